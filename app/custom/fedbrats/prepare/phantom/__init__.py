"""One synthetic BraTS-like case: anatomy from a brain template, a glioma of a grade, MRI contrasts, a site's scanner
profile, file layouts."""
