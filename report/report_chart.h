// Line charts as inline SVG for the run report: nice-number axis ticks, grid, legend, and a
// <title> on every marker so hovering a point shows its step and value (no JavaScript).
// Each series is one <path data-series="KEY"> whose vertices are its finite points in order
// (a non-finite value starts a new subpath), so tests can read the data back from the SVG.
#ifndef MEDTUNE_REPORT_REPORT_CHART_H
#define MEDTUNE_REPORT_REPORT_CHART_H

#include <stddef.h>

#include "common/strbuf.h"

enum {
    CHART_LINE = 1,     // a connected line
    CHART_MARKERS = 2,  // a visible dot per point
    CHART_HOVER = 4,    // an invisible dot per point (up to CHART_MAX_HOVER) showing its title
};

#define CHART_MAX_HOVER 500

typedef struct {
    const char *key;      // data-series attribute
    const char *label;    // legend and hover text
    const double *x, *y;  // n points; points with a non-finite x or y are not drawn
    size_t n;
    int style;            // CHART_* bits
    const char *color;    // CSS colour
} chart_series;

typedef struct {
    const char *id;  // the <svg id>
    const char *title, *x_label, *y_label;
    const chart_series *series;
    int n_series;
} chart;

// Appends a <figure> holding the chart's heading and SVG (or a "no data" note when no
// series has a drawable point).
void chart_render(strbuf *b, const chart *c);

#endif
