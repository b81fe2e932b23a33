"""HTTP edge: one Blueprint per resource; parse + validate, one service call, envelope."""
