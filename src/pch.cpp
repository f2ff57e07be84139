// Anchor for the precompiled header shared by every target.
