/*
 * floor: the speed floor `make bench` measures smsbatch against.
 *
 *   floor FILE            read(2) in 1 MiB chunks into libcsv
 *   floor --archive FILE  the same bytes through libarchive (filters: all; formats: zip, tar,
 *                         raw), for .gz, .zip, ...: every entry is parsed
 *
 * libcsv is set up as smsbatch sets it up (CSV_STRICT | CSV_STRICT_FINI, ',' delimiter, no
 * space trimming); the field and row callbacks only count. Prints "rows fields bytes" (rows
 * include each header line; bytes are the bytes given to the parser) on stdout.
 *
 *   cc -O2 bench/floor.c -o bench/floor -lcsv -larchive
 */
#include <archive.h>
#include <archive_entry.h>
#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1 << 20)

struct counts {
    unsigned long long rows, fields, bytes;
};

static void on_field(void *data, size_t len, void *ctx) {
    (void)data;
    (void)len;
    ((struct counts *)ctx)->fields++;
}

static void on_row(int term, void *ctx) {
    (void)term;
    ((struct counts *)ctx)->rows++;
}

/* smsbatch keeps spaces and tabs around unquoted fields. */
static int no_space(unsigned char c) {
    (void)c;
    return 0;
}

static void parser_init(struct csv_parser *p) {
    if (csv_init(p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        fprintf(stderr, "floor: csv_init failed\n");
        exit(1);
    }
    csv_set_space_func(p, no_space);
    csv_set_delim(p, ',');
}

static void feed(struct csv_parser *p, const void *buf, size_t n, struct counts *c, const char *path) {
    if (csv_parse(p, buf, n, on_field, on_row, c) != n) {
        fprintf(stderr, "floor: %s: %s\n", path, csv_strerror(csv_error(p)));
        exit(2);
    }
    c->bytes += n;
}

static void finish(struct csv_parser *p, struct counts *c, const char *path) {
    if (csv_fini(p, on_field, on_row, c) != 0) {
        fprintf(stderr, "floor: %s: %s\n", path, csv_strerror(csv_error(p)));
        exit(2);
    }
    csv_free(p);
}

static void plain(const char *path, struct counts *c) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "floor: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    char *buf = malloc(CHUNK);
    struct csv_parser p;
    parser_init(&p);
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "floor: %s: %s\n", path, strerror(errno));
            exit(1);
        }
        if (n == 0) break;
        feed(&p, buf, (size_t)n, c, path);
    }
    finish(&p, c, path);
    free(buf);
    close(fd);
}

static void archived(const char *path, struct counts *c) {
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_zip(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_raw(a); /* last: it accepts anything */
    if (archive_read_open_filename(a, path, CHUNK) != ARCHIVE_OK) {
        const char *e = archive_error_string(a);
        fprintf(stderr, "floor: %s: %s\n", path, e ? e : "cannot open");
        exit(1);
    }
    struct archive_entry *entry;
    int r;
    while ((r = archive_read_next_header(a, &entry)) == ARCHIVE_OK) {
        struct csv_parser p;
        parser_init(&p);
        const void *block;
        size_t size;
        la_int64_t offset;
        while ((r = archive_read_data_block(a, &block, &size, &offset)) == ARCHIVE_OK)
            feed(&p, block, size, c, path);
        if (r != ARCHIVE_EOF) break;
        finish(&p, c, path);
    }
    if (r != ARCHIVE_EOF) {
        const char *e = archive_error_string(a);
        fprintf(stderr, "floor: %s: %s\n", path, e ? e : "archive error");
        exit(1);
    }
    archive_read_free(a);
}

int main(int argc, char **argv) {
    int archive = argc == 3 && strcmp(argv[1], "--archive") == 0;
    if (argc != 2 + archive || argv[argc - 1][0] == '-') {
        fprintf(stderr, "usage: floor [--archive] FILE\n");
        return 64;
    }
    struct counts c = {0, 0, 0};
    if (archive)
        archived(argv[2], &c);
    else
        plain(argv[1], &c);
    printf("%llu %llu %llu\n", c.rows, c.fields, c.bytes);
    return 0;
}
