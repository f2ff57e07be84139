// The synthetic `shapes` dataset the built-in model learns from: one flat-coloured circle, square,
// triangle or star on a background of another colour, at one of five positions, in two sizes,
// captioned "a large red triangle on a blue background, on the left" (size and position sometimes
// left out). Generated from a seed, identically on every machine (no std:: distributions, whose
// output is implementation-defined).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "train/dataset.h"

namespace diffuse::train {

struct NamedColour {
  const char* name;
  std::array<uint8_t, 3> rgb;
};

const std::vector<NamedColour>& shape_colours();
const std::vector<std::string>& shape_kinds();      // circle, square, triangle, star
const std::vector<std::string>& shape_positions();  // left, right, top, bottom, centre
// Centre of a position as fractions of the image side (x, y).
std::array<double, 2> position_centre(int position);

struct ShapeSpec {
  int kind = 0;        // index into shape_kinds()
  int colour = 0;      // index into shape_colours()
  int background = 1;  // index into shape_colours(), never equal to colour
  int position = 0;    // index into shape_positions()
  bool large = false;
  // Whether the caption says so. The dataset leaves each out now and then, so the model also
  // follows a short prompt such as "a red circle on a blue background".
  bool size_named = true;
  bool position_named = true;
};

std::string shape_caption(const ShapeSpec& spec);

// The words of `prompt` (runs of letters, lower-cased, each once, in order) that no shapes caption
// holds: a model trained on the dataset has never seen them, and draws noise or an arbitrary shape.
std::vector<std::string> words_outside_shapes_vocabulary(const std::string& prompt);

// Whether (x, y) lies inside a shape of `kind` as render_shape draws it: in units of the shape's
// circumradius from the point it is drawn around, y pointing down. Readers of generated pictures
// use it as a template.
bool inside_shape(int kind, double x, double y);

// uint8 [size, size, 3]. `dx`, `dy` (fractions of the side) and `scale` jitter the placement.
at::Tensor render_shape(const ShapeSpec& spec, int size, double dx = 0, double dy = 0, double scale = 1);

// `count` random shapes (size >= 32) from `seed`, jittered by a few pixels and percent.
Dataset make_shapes_dataset(int count, int size, uint64_t seed);

}  // namespace diffuse::train
