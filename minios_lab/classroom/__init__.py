"""The classroom: chapters and tasks, hand-outs without the answers,
checks, grading one tree or a class."""
