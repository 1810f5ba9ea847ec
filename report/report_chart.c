#include "report/report_chart.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report/report_html.h"

#define CHART_W 860.0
#define CHART_H 300.0
#define MARGIN_L 78.0
#define MARGIN_R 36.0
#define MARGIN_T 30.0
#define MARGIN_B 46.0

// Values beyond this cannot be placed on an axis without overflowing the arithmetic.
#define CHART_MAX_ABS 1e300

typedef struct {
    double lo, hi, step;
    int n_ticks;
    int exp10;  // tick labels show v / 10^exp10 (0: plain numbers)
} axis;

static int drawable(double x, double y) {
    return isfinite(x) && isfinite(y) && fabs(x) < CHART_MAX_ABS && fabs(y) < CHART_MAX_ABS;
}

// 1, 2 or 5 times a power of ten near span / target.
static double nice_step(double span, int target) {
    double raw = span / target;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

static void axis_fit(axis *a, double lo, double hi, int target, int integer) {
    if (hi - lo <= 0 || !isfinite(hi - lo)) {
        double pad = lo == 0 ? 1.0 : fabs(lo) * 0.05;
        lo -= pad;
        hi += pad;
        if (integer && lo < 0 && hi - pad >= 0) lo = 0;
    }
    a->step = nice_step(hi - lo, target);
    if (integer && a->step < 1) a->step = 1;
    a->lo = floor(lo / a->step) * a->step;
    a->hi = ceil(hi / a->step) * a->step;
    // lo / step can round up to the next integer (1.9 / 0.02 = 95.00000000000001).
    if (a->lo > lo) a->lo -= a->step;
    if (a->hi < hi) a->hi += a->step;
    if (a->hi <= a->lo) a->hi = a->lo + a->step;
    a->n_ticks = (int)lround((a->hi - a->lo) / a->step) + 1;
    double big = fmax(fabs(a->lo), fabs(a->hi));
    a->exp10 = big >= 1e5 || big < 1e-2 ? (int)floor(log10(big)) : 0;
    if (integer && big < 1e9) a->exp10 = 0;
}

static void tick_label(char *out, size_t n, const axis *a, double v) {
    double s = pow(10.0, a->exp10);
    double d = a->step / s;
    v /= s;
    if (fabs(v) < d * 1e-6) v = 0;
    int dec = d >= 1 ? 0 : (int)ceil(-log10(d) - 1e-9);
    snprintf(out, n, "%.*f", dec, v);
}

static double map(double v, double lo, double hi, double a, double b) {
    return a + (v - lo) / (hi - lo) * (b - a);
}

static void render_axes(strbuf *b, const chart *c, const axis *ax, const axis *ay) {
    const double x0 = MARGIN_L, x1 = CHART_W - MARGIN_R, y0 = CHART_H - MARGIN_B, y1 = MARGIN_T;
    char label[64];
    strbuf_puts(b, "<g class=\"grid\" stroke=\"#e3e3e3\">");
    for (int i = 0; i < ay->n_ticks; i++) {
        double y = map(ay->lo + i * ay->step, ay->lo, ay->hi, y0, y1);
        strbuf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>", x0, y, x1, y);
    }
    strbuf_puts(b, "</g>\n<g class=\"axis\" stroke=\"#444\">");
    strbuf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>", x0, y0, x1, y0);
    strbuf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>", x0, y0, x0, y1);
    for (int i = 0; i < ax->n_ticks; i++) {
        double x = map(ax->lo + i * ax->step, ax->lo, ax->hi, x0, x1);
        strbuf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>", x, y0, x,
                      y0 + 5);
    }
    for (int i = 0; i < ay->n_ticks; i++) {
        double y = map(ay->lo + i * ay->step, ay->lo, ay->hi, y0, y1);
        strbuf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>", x0 - 5, y,
                      x0, y);
    }
    strbuf_puts(b, "</g>\n<g class=\"ticks\">");
    for (int i = 0; i < ax->n_ticks; i++) {
        double v = ax->lo + i * ax->step;
        tick_label(label, sizeof label, ax, v);
        strbuf_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>",
                      map(v, ax->lo, ax->hi, x0, x1), y0 + 18, label);
    }
    for (int i = 0; i < ay->n_ticks; i++) {
        double v = ay->lo + i * ay->step;
        tick_label(label, sizeof label, ay, v);
        strbuf_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>", x0 - 8,
                      map(v, ay->lo, ay->hi, y0, y1) + 4, label);
    }
    strbuf_puts(b, "</g>\n<text class=\"xlabel\" text-anchor=\"middle\" ");
    strbuf_printf(b, "x=\"%.2f\" y=\"%.2f\">", (x0 + x1) / 2, CHART_H - 8);
    html_escape(b, c->x_label);
    if (ax->exp10) strbuf_printf(b, " (\xC3\x97" "1e%d)", ax->exp10);
    strbuf_printf(b, "</text>\n<text class=\"ylabel\" text-anchor=\"middle\" "
                     "transform=\"translate(16 %.2f) rotate(-90)\">",
                  (y0 + y1) / 2);
    html_escape(b, c->y_label);
    if (ay->exp10) strbuf_printf(b, " (\xC3\x97" "1e%d)", ay->exp10);
    strbuf_puts(b, "</text>\n");
}

static void render_legend(strbuf *b, const chart *c) {
    double x = MARGIN_L;
    for (int s = 0; s < c->n_series; s++) {
        const chart_series *cs = &c->series[s];
        strbuf_printf(b, "<g class=\"legend\" data-series=\"%s\">", cs->key);
        if (cs->style & CHART_LINE)
            strbuf_printf(b, "<line x1=\"%.1f\" y1=\"14\" x2=\"%.1f\" y2=\"14\" stroke=\"%s\" "
                             "stroke-width=\"2.5\"/>",
                          x, x + 22, cs->color);
        if (cs->style & CHART_MARKERS)
            strbuf_printf(b, "<circle cx=\"%.1f\" cy=\"14\" r=\"3.5\" fill=\"%s\"/>", x + 11,
                          cs->color);
        strbuf_printf(b, "<text x=\"%.1f\" y=\"18\">", x + 28);
        html_escape(b, cs->label);
        strbuf_puts(b, "</text></g>");
        x += 44 + 7.0 * (double)strlen(cs->label);
    }
    strbuf_puts(b, "\n");
}

static void render_series(strbuf *b, const chart *c, const chart_series *cs, const axis *ax,
                          const axis *ay) {
    const double x0 = MARGIN_L, x1 = CHART_W - MARGIN_R, y0 = CHART_H - MARGIN_B, y1 = MARGIN_T;
    if (cs->style & CHART_LINE) {
        strbuf_printf(b, "<path class=\"line\" data-series=\"%s\" fill=\"none\" stroke=\"%s\" "
                         "stroke-width=\"%s\" stroke-linejoin=\"round\" d=\"",
                      cs->key, cs->color, cs->style & CHART_MARKERS ? "1.8" : "1.6");
        int pen_down = 0;
        for (size_t i = 0; i < cs->n; i++) {
            if (!drawable(cs->x[i], cs->y[i])) {
                pen_down = 0;
                continue;
            }
            strbuf_printf(b, "%s%.2f %.2f", pen_down ? "L" : "M",
                          map(cs->x[i], ax->lo, ax->hi, x0, x1),
                          map(cs->y[i], ay->lo, ay->hi, y0, y1));
            pen_down = 1;
        }
        strbuf_puts(b, "\"/>\n");
    }
    if (!(cs->style & (CHART_MARKERS | CHART_HOVER))) return;
    size_t stride = 1;
    if (!(cs->style & CHART_MARKERS) && cs->n > CHART_MAX_HOVER)
        stride = (cs->n + CHART_MAX_HOVER - 1) / CHART_MAX_HOVER;
    strbuf_printf(b, "<g class=\"%s\" data-series=\"%s\" fill=\"%s\">",
                  cs->style & CHART_MARKERS ? "pts" : "hit", cs->key, cs->color);
    for (size_t i = 0; i < cs->n; i++) {
        if ((i % stride && i + 1 != cs->n) || !drawable(cs->x[i], cs->y[i])) continue;
        strbuf_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%s\"><title>",
                      map(cs->x[i], ax->lo, ax->hi, x0, x1),
                      map(cs->y[i], ay->lo, ay->hi, y0, y1),
                      cs->style & CHART_MARKERS ? "3.5" : "4");
        html_escape(b, c->x_label);
        strbuf_printf(b, " %.10g: ", cs->x[i]);
        html_escape(b, cs->label);
        strbuf_printf(b, " %.6g</title></circle>", cs->y[i]);
    }
    strbuf_puts(b, "</g>\n");
}

void chart_render(strbuf *b, const chart *c) {
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int s = 0; s < c->n_series; s++)
        for (size_t i = 0; i < c->series[s].n; i++) {
            double x = c->series[s].x[i], y = c->series[s].y[i];
            if (!drawable(x, y)) continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x);
            ylo = fmin(ylo, y), yhi = fmax(yhi, y);
        }
    strbuf_printf(b, "<figure class=\"chart\">\n<figcaption>");
    html_escape(b, c->title);
    strbuf_puts(b, "</figcaption>\n");
    if (xlo > xhi) {
        strbuf_printf(b, "<p class=\"nodata\" id=\"%s\">No data to plot.</p>\n</figure>\n",
                      c->id);
        return;
    }
    axis ax, ay;
    axis_fit(&ax, xlo, xhi, 8, 1);
    axis_fit(&ay, ylo, yhi, 5, 0);
    strbuf_printf(b, "<svg id=\"%s\" viewBox=\"0 0 %.0f "
                     "%.0f\" role=\"img\" aria-label=\"",
                  c->id, CHART_W, CHART_H);
    html_escape(b, c->title);
    strbuf_printf(b, "\" data-x0=\"%.2f\" data-x1=\"%.2f\" data-y0=\"%.2f\" data-y1=\"%.2f\" "
                     "data-xlo=\"%.17g\" data-xhi=\"%.17g\" data-ylo=\"%.17g\" "
                     "data-yhi=\"%.17g\">\n",
                  MARGIN_L, CHART_W - MARGIN_R, CHART_H - MARGIN_B, MARGIN_T, ax.lo, ax.hi,
                  ay.lo, ay.hi);
    render_axes(b, c, &ax, &ay);
    for (int s = 0; s < c->n_series; s++) render_series(b, c, &c->series[s], &ax, &ay);
    render_legend(b, c);
    strbuf_puts(b, "</svg>\n</figure>\n");
}
