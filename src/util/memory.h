#pragma once

namespace diffuse {

// Hands the allocator's free memory back to the system. tcmalloc (linked into every diffuse
// executable, see src/CMakeLists.txt) keeps freed blocks for reuse, which is what makes large
// tensors cheap, but it also keeps a finished phase's memory: loading's, or the text encoder's.
// Without tcmalloc, glibc's malloc_trim.
void release_free_memory();

}  // namespace diffuse
