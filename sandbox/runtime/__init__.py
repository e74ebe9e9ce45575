"""What runs inside the box. Stdlib only; copied into the image; never imports the rest of sandbox."""
