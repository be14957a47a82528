"""Media on demand over db's one media reader: decoded images and video frames, and scene point clouds."""
