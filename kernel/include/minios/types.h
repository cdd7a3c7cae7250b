/*
 * Basic types for the kernel. Only the compiler's freestanding headers are
 * used (stddef, stdint, stdarg, stdbool), so the same code builds into the
 * guest image and into the host's Python extension.
 */
#ifndef MINIOS_TYPES_H
#define MINIOS_TYPES_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + (a)-1) & ~((a)-1))

#endif
