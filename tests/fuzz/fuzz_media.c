/* fuzz_media.c - the media fast paths: the container sniff and top-level
 * box walk (as a file, the way tikd reads one) with the rules on what it
 * read, the reader of the probe's JSON answer, and the JPEG/WebP/PNG header
 * reader with the photo checks. (The probe itself, libavformat, is
 * FFmpeg's, fuzzed by OSS-Fuzz, and runs confined in its own process.) */
#include "fuzz.h"

#include "../../core/image.h"
#include "../../core/media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], why[400];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd >= 0) {
        struct media_info mi;
        struct tikd_err e = {0};
        if (media_sniff(path, &mi, &e) == 0)
            media_check_video(&mi, 600, why, sizeof why);
    }
    struct media_info pm = {.container = "mp4", .mime = "video/mp4"};
    struct tikd_err pe = {0};
    if (media_parse_probe((const char *)data, size, &pm, &pe) == 0) {
        struct media_verdict v;
        media_judge(&pm, 180, &v);
        media_verdict_text(&v, true, why, sizeof why);
    }
    struct image_info ii;
    struct tikd_err e = {0};
    if (image_probe_buf(data, size, size, &ii, &e) == 0)
        image_check_photo(&ii, why, sizeof why);
    return 0;
}
