/* tiktok.h - TikTok's constants in one place, each with the section of
 * ../shared/spec/tiktok-api.md it comes from. Change a number here, nowhere
 * else. */
#ifndef TIKD_TIKTOK_H
#define TIKD_TIKTOK_H

/* Endpoints, below tiktok.api_url (§0.1) */
#define TT_PATH_TOKEN        "/v2/oauth/token/"                     /* §1.5, §1.6 */
#define TT_PATH_REVOKE       "/v2/oauth/revoke/"                    /* §1.8 */
#define TT_PATH_CREATOR_INFO "/v2/post/publish/creator_info/query/" /* §2.1 */
#define TT_PATH_VIDEO_INIT   "/v2/post/publish/video/init/"         /* §2.2 */
#define TT_PATH_INBOX_INIT   "/v2/post/publish/inbox/video/init/"   /* §2.3 */
#define TT_PATH_CONTENT_INIT "/v2/post/publish/content/init/"       /* §2.6 */
#define TT_PATH_STATUS       "/v2/post/publish/status/fetch/"       /* §2.7 */
#define TT_PATH_CANCEL       "/v2/post/publish/cancel/"             /* §2.8 */
#define TT_PATH_USER_INFO    "/v2/user/info/"                       /* §6.1 */

/* Text limits, in UTF-16 code units (§2.2, §2.6, §4.2) */
#define TT_VIDEO_TITLE_MAX       2200
#define TT_PHOTO_TITLE_MAX       90
#define TT_PHOTO_DESCRIPTION_MAX 4000
#define TT_PHOTOS_MAX            35

/* The chunk plan (§2.5). "MB" is ambiguous in the docs: these values satisfy
 * both the decimal and the binary reading. */
#define TT_SINGLE_CHUNK_MAX 64000000ull /* up to this, one request */
#define TT_CHUNK_SIZE       10000000ull /* above it, 10,000,000-byte chunks */
#define TT_CHUNK_MIN        5242880ull  /* 5 MiB: the larger of 5 MB and 5 MiB */
#define TT_CHUNK_MAX        64000000ull /* the smaller of 64 MB and 64 MiB */
#define TT_LAST_CHUNK_MAX   128000000ull
#define TT_CHUNKS_MAX       1000
#define TT_VIDEO_MAX_BYTES  4000000000ull /* §4.1 */
#define TT_UPLOAD_URL_TTL   3600.0        /* §2.2: the upload must finish within an hour */

/* Photos (§4.2): JPEG or WebP, "at most 1080p", "at most 20 MB per image".
 * 1080p is read as neither side above 1920 and the shorter side at most
 * 1080, in either orientation; MB as decimal (20,000,000 bytes), which is
 * the stricter reading. */
#define TT_PHOTO_MAX_LONG  1920
#define TT_PHOTO_MAX_SHORT 1080
#define TT_PHOTO_MAX_BYTES 20000000ull

/* Caches and pacing */
#define TT_CREATOR_INFO_TTL 300.0 /* cache creator_info 5 minutes (issue 5) */

#endif
