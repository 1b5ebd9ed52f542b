#ifndef SMSBATCH_CCURL_SHIM_H
#define SMSBATCH_CCURL_SHIM_H

// curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are C variadic functions (and,
// under GCC/Clang, type-checking macros): Swift cannot call them. These wrappers fix one
// argument type each; every other libcurl call is made from Swift directly.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

static inline CURLcode smsbatch_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode smsbatch_curl_setopt_ptr(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode smsbatch_curl_setopt_str(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode smsbatch_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

/// CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION share this signature.
static inline CURLcode smsbatch_curl_setopt_func(CURL *handle, CURLoption option, curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode smsbatch_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLMcode smsbatch_curl_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}

#endif
