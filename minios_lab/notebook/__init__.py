"""What the notebooks show: kernel source, stable words about a boot, and
the course as a static web site."""
