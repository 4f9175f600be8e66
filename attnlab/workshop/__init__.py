"""The workshop kit: session plans, instructor notes, slides, notebooks and printables, all derived from the chapters."""
