"""One job from start to end, and the library's public face."""
