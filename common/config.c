#include "common/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/json_number.h"
#include "common/fileio.h"

// Replaces comments by spaces (keeping newlines) so parse errors still point at the right
// line; cJSON_Minify would remove them but also shift every position.
static void blank_comments(char *s) {
    int in_string = 0;
    for (char *p = s; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_string = 0;
        } else if (*p == '"') {
            in_string = 1;
        } else if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n') *p++ = ' ';
            if (!*p) break;
        } else if (p[0] == '/' && p[1] == '*') {
            *p++ = ' ';
            *p = ' ';
            for (p++; *p && !(p[0] == '*' && p[1] == '/'); p++)
                if (*p != '\n') *p = ' ';
            if (!*p) break;
            *p++ = ' ';
            *p = ' ';
        }
    }
}

int config_parse(config *c, const char *text, const char *name) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    size_t n = strlen(text);
    char *buf = xmalloc_or_err(n + 1, "config");
    if (!buf) return err_prefix("%s", name);
    memcpy(buf, text, n + 1);
    blank_comments(buf);
    const char *end = NULL;
    c->root = cJSON_ParseWithOpts(buf, &end, 1);
    if (!c->root) {
        const char *at = cJSON_GetErrorPtr();
        if (!at || at < buf || at > buf + n) at = end && end >= buf && end <= buf + n ? end : buf;
        int line = 1, col = 1;
        for (const char *p = buf; p < at; p++) {
            if (*p == '\n') line++, col = 1;
            else col++;
        }
        free(buf);
        return err_set("%s: line %d, column %d: invalid JSON", name, line, col);
    }
    free(buf);
    if (!cJSON_IsObject(c->root)) {
        config_free(c);
        return err_set("%s: the config must be a JSON object", name);
    }
    return 0;
}

int config_load(config *c, const char *path) {
    memset(c, 0, sizeof *c);
    char *text = NULL;
    if (file_read_all(path, &text, NULL)) return -1;
    if (strlen(text) == 0) {
        free(text);
        return err_set("%s: empty config file", path);
    }
    int rc = config_parse(c, text, path);
    free(text);
    return rc;
}

void config_free(config *c) {
    if (c->root) cJSON_Delete(c->root);
    c->root = NULL;
}

// Splits off the next dotted segment of `path` into seg; returns the rest or NULL at the end.
static const char *next_segment(const char *path, char *seg, size_t n) {
    const char *dot = strchr(path, '.');
    size_t len = dot ? (size_t)(dot - path) : strlen(path);
    if (len >= n) len = n - 1;
    memcpy(seg, path, len);
    seg[len] = '\0';
    return dot ? dot + 1 : NULL;
}

static int parse_index(const char *seg, int *idx) {
    if (!*seg) return -1;
    char *end;
    errno = 0;
    long v = strtol(seg, &end, 10);
    if (*end || errno || v < 0 || v > 1 << 30) return -1;
    *idx = (int)v;
    return 0;
}

static cJSON *child_of(const cJSON *node, const char *seg) {
    if (cJSON_IsObject(node)) return cJSON_GetObjectItemCaseSensitive(node, seg);
    int idx;
    if (cJSON_IsArray(node) && !parse_index(seg, &idx)) return cJSON_GetArrayItem(node, idx);
    return NULL;
}

const cJSON *config_find(const config *c, const char *path) {
    const cJSON *node = c->root;
    if (!path || !*path) return node;
    char seg[256];
    const char *rest = path;
    while (rest && node) {
        rest = next_segment(rest, seg, sizeof seg);
        node = child_of(node, seg);
    }
    return node;
}

int config_set(config *c, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return err_set("--set %s: expected key=value", assignment);
    size_t klen = (size_t)(eq - assignment);
    char key[512];
    if (klen >= sizeof key) return err_set("--set: key too long");
    memcpy(key, assignment, klen);
    key[klen] = '\0';
    const char *value_text = eq + 1;
    cJSON *value = cJSON_Parse(value_text);
    if (!value) value = cJSON_CreateString(value_text);
    if (!value) return err_set("--set %s: out of memory", key);

    cJSON *node = c->root;
    char seg[256];
    const char *rest = key;
    for (;;) {
        rest = next_segment(rest, seg, sizeof seg);
        if (!*seg) {
            cJSON_Delete(value);
            return err_set("--set %s: empty key segment", key);
        }
        if (!rest) break;
        cJSON *next = child_of(node, seg);
        if (!next) {
            if (!cJSON_IsObject(node)) {
                cJSON_Delete(value);
                return err_set("--set %s: '%s' does not exist", key, seg);
            }
            next = cJSON_AddObjectToObject(node, seg);
        }
        if (!cJSON_IsObject(next) && !cJSON_IsArray(next)) {
            cJSON_Delete(value);
            return err_set("--set %s: '%s' is not an object", key, seg);
        }
        node = next;
    }
    if (cJSON_IsObject(node)) {
        if (cJSON_GetObjectItemCaseSensitive(node, seg))
            cJSON_ReplaceItemInObjectCaseSensitive(node, seg, value);
        else
            cJSON_AddItemToObject(node, seg, value);
        return 0;
    }
    int idx;
    if (parse_index(seg, &idx) || idx >= cJSON_GetArraySize(node)) {
        cJSON_Delete(value);
        return err_set("--set %s: no array element '%s'", key, seg);
    }
    cJSON_ReplaceItemInArray(node, idx, value);
    return 0;
}

int config_check_keys(const config *c, const char *path, const char *const *allowed) {
    const cJSON *obj = config_find(c, path);
    if (!obj) return 0;
    if (!cJSON_IsObject(obj)) return err_set("%s: %s: must be an object", c->name, path);
    for (const cJSON *it = obj->child; it; it = it->next) {
        int known = 0;
        for (const char *const *a = allowed; *a && !known; a++) known = !strcmp(*a, it->string);
        if (!known) {
            if (path && *path) return err_set("%s: unknown key '%s.%s'", c->name, path, it->string);
            return err_set("%s: unknown key '%s'", c->name, it->string);
        }
    }
    return 0;
}

int config_string(const config *c, const char *path, const char *def, const char **out) {
    const cJSON *v = config_find(c, path);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsString(v)) return err_set("%s: %s: must be a string", c->name, path);
    *out = v->valuestring;
    return 0;
}

int config_number(const config *c, const char *path, double def, double *out) {
    const cJSON *v = config_find(c, path);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return err_set("%s: %s: must be a number", c->name, path);
    *out = v->valuedouble;
    return 0;
}

int config_int(const config *c, const char *path, long long def, long long *out) {
    const cJSON *v = config_find(c, path);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!json_whole(v, -9007199254740992.0, 9007199254740992.0, out))
        return err_set("%s: %s: must be an integer", c->name, path);
    return 0;
}

int config_bool(const config *c, const char *path, int def, int *out) {
    const cJSON *v = config_find(c, path);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return err_set("%s: %s: must be true or false", c->name, path);
    *out = cJSON_IsTrue(v);
    return 0;
}

int config_array_size(const config *c, const char *path, int *n) {
    const cJSON *v = config_find(c, path);
    if (!v || cJSON_IsNull(v)) {
        *n = 0;
        return 0;
    }
    if (!cJSON_IsArray(v)) return err_set("%s: %s: must be an array", c->name, path);
    *n = cJSON_GetArraySize(v);
    return 0;
}

void config_default_literal(const char *def, char *out, size_t n) {
    const char *note = strstr(def, " (");
    size_t len = note ? (size_t)(note - def) : strlen(def);
    if (len >= 2 && def[0] == '`' && def[len - 1] == '`') def++, len -= 2;
    if (len >= n) len = n - 1;
    memcpy(out, def, len);
    out[len] = '\0';
}

int config_check_range(const config *c, const char *key, double v, double lo, double hi,
                       int max_open, int is_int) {
    if (v >= lo && (max_open ? v < hi : v <= hi)) return 0;
    char end = max_open ? ')' : ']';
    if (is_int)
        return err_set("%s: %s: %lld is out of range [%lld, %lld%c", c->name, key, (long long)v,
                       (long long)lo, (long long)hi, end);
    return err_set("%s: %s: %g is out of range [%g, %g%c", c->name, key, v, lo, hi, end);
}
