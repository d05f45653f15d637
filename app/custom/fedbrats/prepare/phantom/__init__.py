"""One synthetic BraTS-like case: anatomy from a brain template, a glioma of a grade, MRI contrasts, file layouts."""
