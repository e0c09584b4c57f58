/* fuzz_media.c - the media fast paths: the MP4/WebM box reader and the
 * video checks (as a file, the way tikd reads one), and the JPEG/WebP/PNG
 * header reader with the photo checks. */
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
        if (media_probe(path, &mi, &e) == 0)
            media_check_video(&mi, 600, why, sizeof why);
    }
    struct image_info ii;
    struct tikd_err e = {0};
    if (image_probe_buf(data, size, size, &ii, &e) == 0)
        image_check_photo(&ii, why, sizeof why);
    return 0;
}
