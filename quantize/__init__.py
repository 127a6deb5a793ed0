"""quantize: make models small (convert, quantise, distil) and measure what each step costs in quality."""
