/*
 * The kernel's string and memory functions, with the meanings ISO C gives
 * them, for a kernel that has no C library underneath.
 *
 * How it works. Every function is a plain byte loop: no word-at-a-time
 * tricks, so each one can be read in a few seconds and checked against the
 * standard. Comparisons look at bytes as unsigned char, as C requires, so
 * "\x80" sorts after "a". memmove() copies forwards when the destination
 * lies below the source and backwards otherwise, so an overlapping copy
 * never reads a byte it has already overwritten.
 *
 * A compiler that spots a byte loop may turn it into a call to memset() or
 * memcpy(), which inside memset() itself would recurse forever; the kernel
 * is built with -fno-builtin and -fno-tree-loop-distribute-patterns so that
 * these loops stay loops.
 *
 * strtoul() follows C99: leading white space, an optional sign, a "0x"
 * prefix for base 16 (or base 0, which also picks octal for a leading 0),
 * then digits up to the first byte that is not a digit of the base. Too
 * large a value gives ULONG_MAX (there is no errno to set); a '-' negates
 * the result in unsigned arithmetic. The end pointer is set after the last
 * digit, or to the start of the string when there are no digits. An invalid
 * base (1, below 0 or above 36) gives 0 and an end pointer at the start.
 * "0b" binary prefixes (C23) are not recognised.
 */
#include <minios/bug.h>
#include <minios/string.h>

#define ULONG_LIMIT (~0UL)

size_t strlen(const char *s)
{
    size_t n = 0;

    while (s[n] != '\0')
        n++;
    return n;
}

size_t strnlen(const char *s, size_t max)
{
    size_t n = 0;

    while (n < max && s[n] != '\0')
        n++;
    return n;
}

int strcmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;

    while (*x != '\0' && *x == *y) {
        x++;
        y++;
    }
    return *x - *y;
}

int strncmp(const char *a, const char *b, size_t n)
{
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;

    for (; n > 0; n--, x++, y++) {
        if (*x != *y)
            return *x - *y;
        if (*x == '\0')
            return 0;
    }
    return 0;
}

char *strcpy(char *dst, const char *src)
{
    size_t i = 0;

    do {
        dst[i] = src[i];
    } while (src[i++] != '\0');
    return dst;
}

/* Copies at most n bytes and fills the rest of the n with NULs. */
char *strncpy(char *dst, const char *src, size_t n)
{
    size_t i = 0;

    for (; i < n && src[i] != '\0'; i++)
        dst[i] = src[i];
    for (; i < n; i++)
        dst[i] = '\0';
    return dst;
}

/* The terminating NUL counts as part of the string: strchr(s, 0) finds it. */
char *strchr(const char *s, int c)
{
    char wanted = (char)c;

    for (;; s++) {
        if (*s == wanted)
            return (char *)s;
        if (*s == '\0')
            return NULL;
    }
}

char *strrchr(const char *s, int c)
{
    char wanted = (char)c;
    const char *last = NULL;

    for (;; s++) {
        if (*s == wanted)
            last = s;
        if (*s == '\0')
            return (char *)last;
    }
}

/* An empty needle is found at the start of the haystack. */
char *strstr(const char *haystack, const char *needle)
{
    size_t needle_len = strlen(needle);

    /* BEGIN SOLUTION strstr-search */
    for (; *haystack != '\0'; haystack++) {
        if (strncmp(haystack, needle, needle_len) == 0)
            return (char *)haystack;
    }
    return needle_len == 0 ? (char *)haystack : NULL;
    /* END SOLUTION */
}

void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t i;

    for (i = 0; i < n; i++)
        d[i] = s[i];
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t i;

    /* BEGIN SOLUTION memmove-overlap */
    if ((uintptr_t)d < (uintptr_t)s) {
        for (i = 0; i < n; i++)
            d[i] = s[i];
    } else {
        for (i = n; i > 0; i--)
            d[i - 1] = s[i - 1];
    }
    /* END SOLUTION */
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    size_t i;

    for (i = 0; i < n; i++)
        d[i] = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a;
    const unsigned char *y = b;
    size_t i;

    for (i = 0; i < n; i++) {
        if (x[i] != y[i])
            return x[i] - y[i];
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* strtoul                                                              */
/* ------------------------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* The value of c as a digit in bases up to 36; 36 when it is none. */
static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    return 36;
}

/*
 * Settles the base and skips a "0x" prefix. The prefix only counts when a
 * hex digit follows it: in "0xg" the number is the "0" alone.
 */
static const char *skip_base_prefix(const char *p, int *base)
{
    bool hex_prefix =
        p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && digit_value(p[2]) < 16;

    if ((*base == 0 || *base == 16) && hex_prefix) {
        *base = 16;
        return p + 2;
    }
    if (*base == 0)
        *base = p[0] == '0' ? 8 : 10;
    return p;
}

/* Reads digits of base from *p on; returns false if there was none. */
static bool read_digits(const char **p, int base, unsigned long *value,
                        bool *overflow)
{
    unsigned long limit = ULONG_LIMIT / (unsigned long)base;
    int last_digit = (int)(ULONG_LIMIT % (unsigned long)base);
    const char *start = *p;
    int digit;

    *value = 0;
    *overflow = false;
    for (; (digit = digit_value(**p)) < base; (*p)++) {
        if (*value > limit || (*value == limit && digit > last_digit))
            *overflow = true;
        else
            *value = *value * (unsigned long)base + (unsigned long)digit;
    }
    return *p != start;
}

unsigned long strtoul(const char *s, char **end, int base)
{
    const char *p = s;
    bool negative = false;
    bool overflow;
    unsigned long value;

    if (end)
        *end = (char *)s;
    if (base < 0 || base == 1 || base > 36)
        return 0;
    while (is_space(*p))
        p++;
    if (*p == '+' || *p == '-')
        negative = *p++ == '-';
    p = skip_base_prefix(p, &base);
    if (!read_digits(&p, base, &value, &overflow))
        return 0;
    if (end)
        *end = (char *)p;
    if (overflow)
        return ULONG_LIMIT;
    return negative ? 0UL - value : value;
}
