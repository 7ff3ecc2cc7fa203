"""Control: how fast (throttle) and whether at all (health) the workers may send."""
