/*
 * The kernel's own string and memory functions (kernel/lib/string.c).
 * Same names and meanings as ISO C; no locale, no errno.
 */
#ifndef MINIOS_STRING_H
#define MINIOS_STRING_H

#include <minios/types.h>

/* cffi: begin */

size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strcpy(char *dst, const char *src);
char *strncpy(char *dst, const char *src, size_t n);
char *strchr(const char *s, int c);
char *strrchr(const char *s, int c);
char *strstr(const char *haystack, const char *needle);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
unsigned long strtoul(const char *s, char **end, int base);
/* cffi: end */

#endif
