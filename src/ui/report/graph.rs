//! The dependency graph as a picture (`pilum graph --format svg|html`): services in layers from
//! left to right, those that depend on nothing first, laid out by
//! [`crate::service::graph::layered`], an arrow from each service to what it depends on. The
//! services the selection picked are highlighted with why — a changed file, a `watch:` path,
//! depending on a changed service, named — and the rest are dimmed.
//!
//! Every service is one `g.node` with `data-service` and its class (`changed`, `watch`,
//! `dependent`, `picked` or `dimmed`); every `depends_on` edge one `path.edge` with
//! `data-service` and `data-depends-on`.

use std::fmt::Write;

use super::markup::{BASE_STYLE, cut, esc, num, page};
use crate::service::graph::{Layers, Slot, layered};

/// Barycentre passes of the layout.
const PASSES: usize = 8;
const PAD: f64 = 16.0;
/// Where the layers start below the title and legend (standalone) or the legend (in a page).
const TOP: f64 = 64.0;
const TOP_IN_PAGE: f64 = 36.0;
const ROW: f64 = 46.0;
const NODE_H: f64 = 34.0;
/// Rows and boxes when no service has a reason line.
const ROW_SHORT: f64 = 30.0;
const NODE_H_SHORT: f64 = 22.0;
/// Services without any edge are drawn in a grid below the layers when more than this many.
const GRID_AFTER: usize = 12;
const GRID_W: f64 = 1000.0;
const GAP: f64 = 64.0;
/// Width of a layer holding only bends.
const BEND_W: f64 = 24.0;
const NAME_PX: f64 = 7.6;
const WHY_PX: f64 = 6.8;
/// Width of a legend character.
const KEY_PX: f64 = 6.8;
const WHY_CHARS: usize = 40;

/// One service of the picture: its name and, when selected, why.
pub(crate) struct Node<'a> {
    pub name: &'a str,
    pub reason: Option<&'a str>,
}

/// Why a service is highlighted, from its selection reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A file under its directory changed.
    Changed,
    /// A file under one of its `watch:` paths changed.
    Watch,
    /// It depends on a changed service.
    Dependent,
    /// Named, matched, or every service.
    Picked,
    /// Not selected.
    Dimmed,
}

impl Why {
    /// The words of `service::select`'s reasons.
    pub(crate) fn of(reason: Option<&str>) -> Why {
        match reason {
            None => Why::Dimmed,
            Some(r) if r.starts_with("changed: ") => Why::Changed,
            Some(r) if r.starts_with("watch: ") => Why::Watch,
            Some(r) if r.starts_with("depends on changed") => Why::Dependent,
            Some(_) => Why::Picked,
        }
    }

    pub(crate) fn class(self) -> &'static str {
        match self {
            Why::Changed => "changed",
            Why::Watch => "watch",
            Why::Dependent => "dependent",
            Why::Picked => "picked",
            Why::Dimmed => "dimmed",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Why::Changed => "changed files",
            Why::Watch => "a watched path changed",
            Why::Dependent => "depends on a changed service",
            Why::Picked => "selected",
            Why::Dimmed => "not selected",
        }
    }
}

const STYLE: &str = "\
.graph text { font-family: ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace; font-size: 11px; fill: #1f2328; }
.graph .title { font: 600 14px system-ui, -apple-system, 'Segoe UI', sans-serif; }
.graph .sub { font: 12px system-ui, -apple-system, 'Segoe UI', sans-serif; fill: #57606a; }
.graph .name { font-size: 12px; font-weight: 600; }
.graph .why { fill: #57606a; }
.graph .node rect, .graph .key rect { stroke-width: 1.5; rx: 5; }
.graph .picked rect { fill: #dafbe1; stroke: #1a7f37; }
.graph .changed rect { fill: #fff1e5; stroke: #bc4c00; stroke-width: 2.5; }
.graph .watch rect { fill: #fbefff; stroke: #8250df; stroke-width: 2; }
.graph .dependent rect { fill: #ddf4ff; stroke: #0969da; }
.graph .dimmed rect { fill: #f6f8fa; stroke: #d0d7de; }
.graph .node.dimmed text { fill: #8c959f; }
.graph .edge { fill: none; stroke: #8c959f; stroke-width: 1.2; }
.graph .edge.active { stroke: #57606a; }
.graph .edge.propagates { stroke: #0969da; stroke-width: 2; }
.graph .edge.dimmed { stroke: #d0d7de; }
.graph .arrow { fill: #57606a; }";

/// The picture as a standalone SVG document.
pub(crate) fn svg(nodes: &[Node<'_>], deps: &[Vec<usize>], base: Option<&str>) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    element(&mut out, nodes, deps, base, true);
    crate::redact::redact(&out).into_owned()
}

/// The picture in an HTML page, with the selected services and their reasons listed.
pub(crate) fn html(nodes: &[Node<'_>], deps: &[Vec<usize>], base: Option<&str>) -> String {
    let mut body = String::new();
    let picked = nodes.iter().filter(|n| n.reason.is_some()).count();
    let _ = writeln!(
        body,
        "<h1>pilum graph</h1>\n<p class=\"muted\">{} services, {picked} selected{}. An arrow points at what a service depends on; dependencies deploy first, left to right.</p>",
        nodes.len(),
        base.map(|b| format!(" (changed since <code>{}</code>)", esc(b))).unwrap_or_default()
    );
    element(&mut body, nodes, deps, base, false);
    body.push_str(
        "<h2>selected</h2>\n<table class=\"selected\">\n<tr><th>service</th><th>why</th></tr>\n",
    );
    for n in nodes {
        if let Some(r) = n.reason {
            let _ = writeln!(
                body,
                "<tr class=\"{}\" data-service=\"{}\"><td><code>{}</code></td><td>{}</td></tr>",
                Why::of(Some(r)).class(),
                esc(n.name),
                esc(n.name),
                esc(r)
            );
        }
    }
    body.push_str("</table>\n");
    let style = format!("{BASE_STYLE}\n{STYLE}");
    crate::redact::redact(&page("pilum graph", &style, &body, None)).into_owned()
}

/// Where a service is drawn: its box's left, top and width.
#[derive(Clone, Copy, Default)]
struct Place {
    left: f64,
    top: f64,
    width: f64,
}

/// The geometry of a picture: rows, boxes, columns.
struct Geometry {
    row: f64,
    node_h: f64,
    top: f64,
    tallest: usize,
    col_x: Vec<f64>,
    col_w: Vec<f64>,
    /// Layer sizes without the services drawn in the grid.
    lens: Vec<usize>,
}

impl Geometry {
    /// The middle of slot `p` of layer `r`.
    fn y(&self, r: usize, p: usize) -> f64 {
        self.top
            + (self.tallest - self.lens[r]) as f64 * self.row / 2.0
            + p as f64 * self.row
            + self.node_h / 2.0
    }
}

/// Whether a reason is worth a line under the name (every service picked says nothing).
fn shown(reason: Option<&str>) -> Option<&str> {
    reason.filter(|r| *r != "all services")
}

/// The `<svg>` element. `standalone`: with its own style and a title line (an `.svg` file).
fn element(
    b: &mut String,
    nodes: &[Node<'_>],
    deps: &[Vec<usize>],
    base: Option<&str>,
    standalone: bool,
) {
    let l = layered(deps, PASSES);
    let why: Vec<Why> = nodes.iter().map(|n| Why::of(n.reason)).collect();
    let two_lines = nodes.iter().any(|n| shown(n.reason).is_some());
    let (row, node_h) = if two_lines { (ROW, NODE_H) } else { (ROW_SHORT, NODE_H_SHORT) };
    let width_of = |i: usize| {
        let n = &nodes[i];
        let why = shown(n.reason).map_or(0, |r| cut(r, WHY_CHARS).chars().count());
        ((n.name.chars().count() as f64 * NAME_PX).max(why as f64 * WHY_PX) + 16.0).max(60.0)
    };
    // Services with no edge at all go to a grid below the layers when there are many.
    let mut linked = vec![false; nodes.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            linked[i] = true;
            linked[d] = true;
        }
    }
    let alone: Vec<usize> = (0..nodes.len()).filter(|&i| !linked[i]).collect();
    let grid = alone.len() > GRID_AFTER;
    let in_grid = |i: usize| grid && !linked[i];
    let layers: Vec<Vec<Slot>> = l
        .layers
        .iter()
        .map(|layer| {
            layer
                .iter()
                .copied()
                .filter(|s| !matches!(s, Slot::Service(i) if in_grid(*i)))
                .collect()
        })
        .collect();
    let mut col_x = Vec::with_capacity(layers.len());
    let mut col_w = Vec::with_capacity(layers.len());
    let mut x = PAD;
    for layer in &layers {
        if layer.is_empty() {
            col_x.push(x);
            col_w.push(0.0);
            continue;
        }
        let w = layer
            .iter()
            .map(|s| match s {
                Slot::Service(i) => width_of(*i),
                Slot::Bend(_) => BEND_W,
            })
            .fold(BEND_W, f64::max);
        col_x.push(x);
        col_w.push(w);
        x += w + GAP;
    }
    let top = if standalone { TOP } else { TOP_IN_PAGE };
    let g = Geometry {
        row,
        node_h,
        top,
        tallest: layers.iter().map(Vec::len).max().unwrap_or(0),
        col_x,
        col_w,
        lens: layers.iter().map(Vec::len).collect(),
    };
    let keys = [Why::Changed, Why::Watch, Why::Dependent, Why::Picked, Why::Dimmed];
    let legend_w: f64 = keys.iter().map(|w| 37.0 + w.legend().len() as f64 * KEY_PX).sum();
    let mut width = (x - GAP + PAD).max(legend_w + 2.0 * PAD);
    let mut places = vec![Place::default(); nodes.len()];
    for (r, layer) in layers.iter().enumerate() {
        for (p, s) in layer.iter().enumerate() {
            if let Slot::Service(i) = *s {
                let w = width_of(i);
                places[i] = Place {
                    left: g.col_x[r] + (g.col_w[r] - w) / 2.0,
                    top: g.y(r, p) - node_h / 2.0,
                    width: w,
                };
            }
        }
    }
    let mut height = top + g.tallest as f64 * row + PAD;
    let grid_at = height + 10.0;
    if grid {
        width = width.max(GRID_W);
        let cell = alone.iter().map(|&i| width_of(i)).fold(60.0, f64::max) + 12.0;
        let per_row = (((width - 2.0 * PAD) / cell).floor() as usize).max(1);
        for (k, &i) in alone.iter().enumerate() {
            let (c, r) = (k % per_row, k / per_row);
            places[i] = Place {
                left: PAD + c as f64 * cell,
                top: grid_at + 22.0 + r as f64 * row,
                width: width_of(i),
            };
        }
        height = grid_at + 22.0 + alone.len().div_ceil(per_row) as f64 * row + PAD;
    }
    let _ = writeln!(
        b,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"graph\" id=\"graph\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"dependency graph of {} services\">",
        num(width),
        num(height),
        num(width),
        num(height),
        nodes.len()
    );
    if standalone {
        let _ = writeln!(b, "<style>/*<![CDATA[*/\n{STYLE}\n/*]]>*/</style>");
    }
    b.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"7.5\" refY=\"4\" markerWidth=\"8\" markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path class=\"arrow\" d=\"M0,0 L8,4 L0,8 z\"/></marker></defs>\n");
    if standalone {
        let picked = nodes.iter().filter(|n| n.reason.is_some()).count();
        let _ = writeln!(
            b,
            "<text class=\"title\" x=\"{PAD}\" y=\"20\">pilum graph</text><text class=\"sub\" x=\"{}\" y=\"20\">{} services, {picked} selected{} · an arrow points at what a service depends on</text>",
            num(PAD + 104.0),
            nodes.len(),
            base.map(|b| format!(", changed since {}", esc(b))).unwrap_or_default()
        );
    }
    let key_y = top - 32.0;
    let mut key_x = PAD;
    b.push_str("<g class=\"legend\">");
    for w in keys {
        let _ = write!(
            b,
            "<g class=\"key {}\"><rect x=\"{}\" y=\"{}\" width=\"14\" height=\"12\"/><text x=\"{}\" y=\"{}\">{}</text></g>",
            w.class(),
            num(key_x),
            num(key_y),
            num(key_x + 19.0),
            num(key_y + 10.0),
            w.legend()
        );
        key_x += 37.0 + w.legend().len() as f64 * KEY_PX;
    }
    b.push_str("</g>\n");
    if grid {
        let _ = writeln!(
            b,
            "<text class=\"sub\" x=\"{PAD}\" y=\"{}\">{} services with no dependency either way</text>",
            num(grid_at + 12.0),
            alone.len()
        );
    }
    b.push_str("<g class=\"edges\">\n");
    edges(b, &l, &why, nodes, &places, &g);
    b.push_str("</g>\n<g class=\"nodes\">\n");
    for (i, n) in nodes.iter().enumerate() {
        let Place { left, top, width } = places[i];
        let title = match n.reason {
            Some(reason) => format!("{} — {reason}", n.name),
            None => format!("{} — not selected", n.name),
        };
        let name_y = if two_lines { top + 14.0 } else { top + 15.0 };
        let _ = write!(
            b,
            "<g class=\"node {}\" data-service=\"{}\" data-layer=\"{}\"><title>{}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/><text class=\"name\" x=\"{}\" y=\"{}\">{}</text>",
            why[i].class(),
            esc(n.name),
            l.rank[i],
            esc(&title),
            num(left),
            num(top),
            num(width),
            num(node_h),
            num(left + 8.0),
            num(name_y),
            esc(n.name)
        );
        if let Some(reason) = shown(n.reason) {
            let _ = write!(
                b,
                "<text class=\"why\" x=\"{}\" y=\"{}\">{}</text>",
                num(left + 8.0),
                num(top + 28.0),
                esc(&cut(reason, WHY_CHARS))
            );
        }
        b.push_str("</g>\n");
    }
    b.push_str("</g>\n</svg>\n");
}

/// Each edge from the dependent's left side, through its bends, to the dependency's right side.
fn edges(
    b: &mut String,
    l: &Layers,
    why: &[Why],
    nodes: &[Node<'_>],
    places: &[Place],
    g: &Geometry,
) {
    for e in &l.edges {
        let (from, to) = (e.service, e.depends_on);
        let (pf, pt) = (places[from], places[to]);
        let mid = g.node_h / 2.0;
        // Points from the dependent to the dependency; a bend is crossed straight.
        let mut pts: Vec<(f64, f64, bool)> = vec![(pf.left, pf.top + mid, false)];
        for &(r, p) in e.bends.iter().rev() {
            let y = g.y(r, p);
            pts.push((g.col_x[r] + g.col_w[r], y, false));
            pts.push((g.col_x[r], y, true));
        }
        pts.push((pt.left + pt.width + 1.0, pt.top + mid, false));
        let mut d = format!("M{},{}", num(pts[0].0), num(pts[0].1));
        for w in pts.windows(2) {
            let ((x0, y0, _), (x1, y1, straight)) = (w[0], w[1]);
            if straight {
                let _ = write!(d, " L{},{}", num(x1), num(y1));
            } else {
                let mx = (x0 + x1) / 2.0;
                let _ = write!(
                    d,
                    " C{},{} {},{} {},{}",
                    num(mx),
                    num(y0),
                    num(mx),
                    num(y1),
                    num(x1),
                    num(y1)
                );
            }
        }
        let class = if why[from] == Why::Dimmed || why[to] == Why::Dimmed {
            "edge dimmed"
        } else if why[from] == Why::Dependent && why[to] != Why::Picked {
            "edge active propagates"
        } else {
            "edge active"
        };
        let _ = writeln!(
            b,
            "<path class=\"{class}\" data-service=\"{}\" data-depends-on=\"{}\" d=\"{d}\" marker-end=\"url(#arrow)\"><title>{} depends on {}</title></path>",
            esc(nodes[from].name),
            esc(nodes[to].name),
            esc(nodes[from].name),
            esc(nodes[to].name)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_become_classes() {
        assert_eq!(Why::of(Some("changed: a/b.txt")), Why::Changed);
        assert_eq!(Why::of(Some("watch: libs/x")), Why::Watch);
        assert_eq!(Why::of(Some("depends on changed `db`")), Why::Dependent);
        assert_eq!(Why::of(Some("all services")), Why::Picked);
        assert_eq!(Why::of(None), Why::Dimmed);
    }

    #[test]
    fn draws_every_service_and_edge() {
        let names = ["db", "api", "web<&>"];
        let nodes: Vec<Node<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Node { name: n, reason: (i > 0).then_some("depends on changed `db`") })
            .collect();
        let deps = vec![vec![], vec![0], vec![0, 1]];
        let svg = svg(&nodes, &deps, Some("main"));
        assert_eq!(svg.matches("<g class=\"node ").count(), 3);
        assert_eq!(svg.matches("<path class=\"edge").count(), 3);
        assert!(svg.contains("data-service=\"web&lt;&amp;&gt;\" data-depends-on=\"api\""));
        assert!(svg.contains("<g class=\"node dimmed\" data-service=\"db\""));
    }
}
