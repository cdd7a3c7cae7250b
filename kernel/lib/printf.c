/*
 * Formatted output into a caller's buffer: vsnprintf() and snprintf().
 *
 * How it works. The format is walked once from left to right. Plain text
 * is copied. At each '%' the directive is read into a struct fmt_spec by a
 * small parser (flags, width, precision, length modifier, conversion); a
 * '*' width or precision takes the next int argument at that moment, so
 * arguments are consumed in the order C prescribes. The spec is then
 * handed to one of three formatters:
 *
 *   integers (d i u x X o p)  sign, "0x" prefix, zero digits required by
 *                             the precision, then the digits themselves;
 *   strings (s, and "(nil)")  at most `precision` bytes of the string;
 *   characters (c)            one byte, which may be NUL.
 *
 * Each formatter pads to the field width with spaces on the left (or on
 * the right with '-'), or with zeros after the sign and prefix when the
 * '0' flag applies to an integer without a precision.
 *
 * All output goes through struct out_buf. It stores a byte only while it
 * still leaves room for the final NUL, but counts every byte, so the
 * return value is the length the complete output would have had, exactly
 * as C99 asks: the caller can call once with size 0 to learn the length.
 *
 * Details that follow glibc, so that the two can be compared byte for byte:
 *   - '+' and ' ' are ignored for u x X o c s; for p they are honoured.
 *   - "%p" prints like "%#lx"; a NULL pointer prints "(nil)" whatever the
 *     precision.
 *   - "%s" of NULL prints "(null)" unless a precision below 6 is given, in
 *     which case it prints nothing.
 *   - the '0' flag never pads strings or characters: they get spaces.
 *   - "%%" prints one '%' and ignores any flags, width or precision.
 *
 * Where this file differs from glibc, on purpose:
 *   - an unknown conversion (e.g. "%k", or "%lq") and a directive cut short
 *     by the end of the format are copied to the output literally, as
 *     written ("%*k" stays "%*k", though its '*' still takes an int);
 *     glibc re-spells the directive ("%5k") or fails with -1.
 *   - length modifiers on c, s and p are accepted and ignored (no wide
 *     characters); L j t q are unknown.
 *   - an output longer than INT_MAX returns -1 (glibc: -1 and EOVERFLOW);
 *     a width or precision beyond INT_MAX, or a '*' width of INT_MIN, is
 *     taken as INT_MAX (glibc may fail with -1 instead).
 */
#include <minios/printf.h>
#include <minios/string.h>

#define INT_LIMIT ((int)((unsigned int)-1 >> 1))

/* 64 bits in octal need 22 digits. */
#define DIGITS_MAX 24

/* --- Output buffer --- */

struct out_buf {
    char *buf;
    size_t size; /* capacity including the final NUL; 0: store nothing */
    size_t len;  /* bytes produced so far, stored or not */
};

/*
 * Invariant: buf[0 .. min(len, size - 1)) holds the output so far, and
 * buf[size - 1] is kept free for the NUL. How many of the next `count`
 * bytes still fit:
 */
static size_t out_storable(const struct out_buf *out, size_t count)
{
    size_t room = out->size > out->len + 1 ? out->size - out->len - 1 : 0;

    return count < room ? count : room;
}

static void out_bytes(struct out_buf *out, const char *bytes, size_t count)
{
    size_t stored = out_storable(out, count);
    size_t i;

    for (i = 0; i < stored; i++)
        out->buf[out->len + i] = bytes[i];
    out->len += count;
}

static void out_repeat(struct out_buf *out, char c, size_t count)
{
    size_t stored = out_storable(out, count);
    size_t i;

    for (i = 0; i < stored; i++)
        out->buf[out->len + i] = c;
    out->len += count;
}

static int out_finish(struct out_buf *out)
{
    if (out->size > 0)
        out->buf[out->len < out->size ? out->len : out->size - 1] = '\0';
    return out->len > (size_t)INT_LIMIT ? -1 : (int)out->len;
}

/* --- Format-spec parser --- */

/* Flag bits, in the order of their characters in FLAG_CHARS. */
#define FLAG_CHARS "-0+ #"
#define FLAG_LEFT 0x01u  /* '-': pad on the right */
#define FLAG_ZERO 0x02u  /* '0': pad integers with zeros */
#define FLAG_PLUS 0x04u  /* '+': '+' before non-negative numbers */
#define FLAG_SPACE 0x08u /* ' ': ' ' before non-negative numbers */
#define FLAG_ALT 0x10u   /* '#': "0x" prefix, or a leading 0 in octal */

enum length_mod { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_Z };

struct fmt_spec {
    unsigned int flags;
    int width;     /* minimum field width, >= 0 */
    int precision; /* < 0: none given */
    enum length_mod length;
    char conv; /* conversion character; '\0' if the format ended */
};

static const char *parse_flags(const char *p, unsigned int *flags)
{
    const char *found;

    while (*p != '\0' && (found = strchr(FLAG_CHARS, *p)) != NULL) {
        *flags |= 1u << (found - FLAG_CHARS);
        p++;
    }
    return p;
}

/* Decimal digits, saturating at INT_LIMIT. */
static const char *parse_decimal(const char *p, int *value)
{
    int n = 0;

    for (; *p >= '0' && *p <= '9'; p++) {
        int digit = *p - '0';
        n = n > (INT_LIMIT - digit) / 10 ? INT_LIMIT : n * 10 + digit;
    }
    *value = n;
    return p;
}

static const char *parse_width(const char *p, va_list *args,
                               struct fmt_spec *spec)
{
    int width;

    if (*p != '*')
        return parse_decimal(p, &spec->width);
    width = va_arg(*args, int);
    if (width < 0) {
        spec->flags |= FLAG_LEFT;
        width = width < -INT_LIMIT ? INT_LIMIT : -width;
    }
    spec->width = width;
    return p + 1;
}

static const char *parse_precision(const char *p, va_list *args,
                                   struct fmt_spec *spec)
{
    if (*p != '.')
        return p;
    p++;
    if (*p != '*')
        return parse_decimal(p, &spec->precision);
    spec->precision = va_arg(*args, int); /* negative: as if none */
    return p + 1;
}

static const char *parse_length(const char *p, enum length_mod *length)
{
    bool doubled = p[1] == p[0];

    if (*p == 'z') {
        *length = LEN_Z;
        return p + 1;
    }
    if (*p == 'h')
        *length = doubled ? LEN_HH : LEN_H;
    else if (*p == 'l')
        *length = doubled ? LEN_LL : LEN_L;
    else
        return p;
    return doubled ? p + 2 : p + 1;
}

/* p points just after the '%'. Returns the first byte after the spec. */
static const char *parse_spec(const char *p, va_list *args,
                              struct fmt_spec *spec)
{
    spec->flags = 0;
    spec->width = 0;
    spec->precision = -1;
    spec->length = LEN_NONE;
    p = parse_flags(p, &spec->flags);
    p = parse_width(p, args, spec);
    p = parse_precision(p, args, spec);
    p = parse_length(p, &spec->length);
    spec->conv = *p;
    return *p ? p + 1 : p;
}

/* --- Padding --- */

static size_t pad_needed(const struct fmt_spec *spec, size_t body_len)
{
    return (size_t)spec->width > body_len ? (size_t)spec->width - body_len : 0;
}

/* Writes a body of body_len bytes with space padding around it. */
static void out_padded(struct out_buf *out, const struct fmt_spec *spec,
                       const char *body, size_t body_len)
{
    size_t pad = pad_needed(spec, body_len);

    if (!(spec->flags & FLAG_LEFT))
        out_repeat(out, ' ', pad);
    out_bytes(out, body, body_len);
    if (spec->flags & FLAG_LEFT)
        out_repeat(out, ' ', pad);
}

/* --- Integer formatter --- */

/*
 * A number is printed as four parts, each possibly empty:
 *   [sign or space] ["0x" / "0X"] [zeros] [digits]
 * and the field padding goes left of it, right of it, or (with '0' and no
 * precision) into the zeros.
 */
struct number_parts {
    char prefix[4]; /* sign then "0x": at most 3 bytes */
    size_t prefix_len;
    size_t zeros;
    char digit_buf[DIGITS_MAX];
    const char *digits; /* points into digit_buf */
    size_t digit_len;
};

/* Writes the digits of value at the end of parts->digit_buf. */
static void make_digits(struct number_parts *parts, unsigned long long value,
                        unsigned int base, bool upper)
{
    const char *symbols = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char *end = parts->digit_buf + DIGITS_MAX;
    char *p = end;

    while (value != 0) {
        *--p = symbols[value % base];
        value /= base;
    }
    parts->digits = p;
    parts->digit_len = (size_t)(end - p);
}

static void make_prefix(struct number_parts *parts,
                        const struct fmt_spec *spec, bool negative,
                        bool nonzero)
{
    size_t n = 0;

    if (negative)
        parts->prefix[n++] = '-';
    else if (spec->flags & FLAG_PLUS)
        parts->prefix[n++] = '+';
    else if (spec->flags & FLAG_SPACE)
        parts->prefix[n++] = ' ';
    if ((spec->flags & FLAG_ALT) && nonzero &&
        (spec->conv == 'x' || spec->conv == 'X' || spec->conv == 'p')) {
        parts->prefix[n++] = '0';
        parts->prefix[n++] = spec->conv == 'X' ? 'X' : 'x';
    }
    parts->prefix_len = n;
}

/* Zeros demanded by the precision (default 1) and by "%#o". */
static void make_zeros(struct number_parts *parts, const struct fmt_spec *spec)
{
    size_t precision = spec->precision < 0 ? 1 : (size_t)spec->precision;

    parts->zeros =
        precision > parts->digit_len ? precision - parts->digit_len : 0;
    if (spec->conv == 'o' && (spec->flags & FLAG_ALT) && parts->zeros == 0 &&
        (parts->digit_len == 0 || parts->digits[0] != '0'))
        parts->zeros = 1;
}

static void out_number(struct out_buf *out, const struct fmt_spec *spec,
                       const struct number_parts *parts)
{
    size_t body = parts->prefix_len + parts->zeros + parts->digit_len;
    size_t pad = pad_needed(spec, body);
    bool left = spec->flags & FLAG_LEFT;
    bool zero_pad = !left && (spec->flags & FLAG_ZERO) && spec->precision < 0;

    if (!left && !zero_pad)
        out_repeat(out, ' ', pad);
    out_bytes(out, parts->prefix, parts->prefix_len);
    out_repeat(out, '0', parts->zeros + (zero_pad ? pad : 0));
    out_bytes(out, parts->digits, parts->digit_len);
    if (left)
        out_repeat(out, ' ', pad);
}

static void format_integer(struct out_buf *out, const struct fmt_spec *spec,
                           unsigned long long magnitude, bool negative)
{
    struct number_parts parts;
    unsigned int base = 10;

    if (spec->conv == 'o')
        base = 8;
    else if (spec->conv == 'x' || spec->conv == 'X' || spec->conv == 'p')
        base = 16;
    make_digits(&parts, magnitude, base, spec->conv == 'X');
    make_prefix(&parts, spec, negative, magnitude != 0);
    make_zeros(&parts, spec);
    out_number(out, spec, &parts);
}

/* --- Fetching arguments --- */

static long long fetch_signed(va_list *args, enum length_mod length)
{
    switch (length) {
    case LEN_HH:
        return (signed char)va_arg(*args, int);
    case LEN_H:
        return (short)va_arg(*args, int);
    case LEN_L:
        return va_arg(*args, long);
    case LEN_LL:
        return va_arg(*args, long long);
    case LEN_Z:
        return va_arg(*args, ptrdiff_t); /* the signed size_t */
    default:
        return va_arg(*args, int);
    }
}

static unsigned long long fetch_unsigned(va_list *args, enum length_mod length)
{
    switch (length) {
    case LEN_HH:
        return (unsigned char)va_arg(*args, unsigned int);
    case LEN_H:
        return (unsigned short)va_arg(*args, unsigned int);
    case LEN_L:
        return va_arg(*args, unsigned long);
    case LEN_LL:
        return va_arg(*args, unsigned long long);
    case LEN_Z:
        return va_arg(*args, size_t);
    default:
        return va_arg(*args, unsigned int);
    }
}

/* --- Conversions --- */

static void convert_signed(struct out_buf *out, const struct fmt_spec *spec,
                           va_list *args)
{
    long long value = fetch_signed(args, spec->length);
    bool negative = value < 0;
    /* Negate in unsigned arithmetic: also right for LLONG_MIN. */
    unsigned long long magnitude = negative ? 0ULL - (unsigned long long)value
                                            : (unsigned long long)value;

    format_integer(out, spec, magnitude, negative);
}

static void convert_unsigned(struct out_buf *out, struct fmt_spec *spec,
                             va_list *args)
{
    spec->flags &= ~(FLAG_PLUS | FLAG_SPACE);
    format_integer(out, spec, fetch_unsigned(args, spec->length), false);
}

static void convert_string(struct out_buf *out, const struct fmt_spec *spec,
                           const char *s)
{
    size_t len;

    if (s == NULL)
        s = spec->precision < 0 || spec->precision >= 6 ? "(null)" : "";
    if (spec->precision < 0)
        len = strlen(s);
    else
        len = strnlen(s, (size_t)spec->precision);
    out_padded(out, spec, s, len);
}

static void convert_pointer(struct out_buf *out, struct fmt_spec *spec,
                            va_list *args)
{
    void *pointer = va_arg(*args, void *);

    if (pointer == NULL) {
        spec->precision = -1;
        convert_string(out, spec, "(nil)");
        return;
    }
    spec->flags |= FLAG_ALT;
    format_integer(out, spec, (uintptr_t)pointer, false);
}

static void convert_char(struct out_buf *out, const struct fmt_spec *spec,
                         va_list *args)
{
    char c = (char)(unsigned char)va_arg(*args, int);

    out_padded(out, spec, &c, 1);
}

/* Formats one directive; start points at its '%', end just after it. */
static void convert(struct out_buf *out, struct fmt_spec *spec, va_list *args,
                    const char *start, const char *end)
{
    switch (spec->conv) {
    case 'd':
    case 'i':
        convert_signed(out, spec, args);
        break;
    case 'u':
    case 'x':
    case 'X':
    case 'o':
        convert_unsigned(out, spec, args);
        break;
    case 'c':
        convert_char(out, spec, args);
        break;
    case 's':
        convert_string(out, spec, va_arg(*args, const char *));
        break;
    case 'p':
        convert_pointer(out, spec, args);
        break;
    case '%':
        out_bytes(out, "%", 1);
        break;
    default: /* unknown, or the format ended: copy it as written */
        out_bytes(out, start, (size_t)(end - start));
    }
}

/* --- Entry points --- */

static void format_all(struct out_buf *out, const char *fmt, va_list *args)
{
    struct fmt_spec spec;

    while (*fmt) {
        const char *text = fmt;
        const char *start;

        while (*fmt && *fmt != '%')
            fmt++;
        out_bytes(out, text, (size_t)(fmt - text));
        if (!*fmt)
            break;
        start = fmt;
        fmt = parse_spec(fmt + 1, args, &spec);
        convert(out, &spec, args, start, fmt);
    }
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out_buf out = {.buf = buf, .size = size, .len = 0};
    va_list args;

    va_copy(args, ap);
    format_all(&out, fmt, &args);
    va_end(args);
    return out_finish(&out);
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
