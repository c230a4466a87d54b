"""Pure rules of the analytics figures: folds of dated facts, no I/O, no clock."""
