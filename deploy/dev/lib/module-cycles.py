#!/usr/bin/env python3
"""Reports import cycles between sibling modules of the agent crate (agent/src).

A module A depends on its sibling B (same parent) when any file in A's subtree names a path
inside B's subtree: `use crate::...`, `use super::...`, a relative `use child::...`, or a
`crate::x::`/`super::x::`/`self::x::` path in code. Paths through re-exports (`pub use`, and a
parent's private `use` reached with `super::Name`) are followed to the module that defines the
item. Test code counts too: a cycle only in tests is still a cycle. Not seen: a name that a
glob import (`use super::*`) brings in and code then uses bare, and paths built by macros from
pieces; neither occurs in agent/src outside `mod tests` (whose `super::*` is its own file).

At each level (the crate root, pods/, pods/container/, ...) the strongly connected components of
the sibling graph with more than one module are cycles. Each is printed with one example line
per edge. Exit status: 0 when there are none, 1 when there is at least one, 2 on a usage error.

Usage: module-cycles.py [agent/src] [--edges LEVEL]
  --edges LEVEL  also print every sibling edge at LEVEL ('crate', 'pods', 'pods::container').
"""

import os
import re
import sys
from collections import defaultdict

# ---------------------------------------------------------------------------------------------
# Source text -> tokens (comments, strings and char literals removed; line numbers kept).

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|::|[{}();,*]|\S")


def strip(text):
    """Blanks out comments, string and char literals, keeping newlines for line numbers."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and not (i and re.match(r"\w", text[i - 1])):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') but not a lifetime ('a).
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokens(text):
    toks = []
    for lineno, line in enumerate(strip(text).split("\n"), 1):
        for m in TOKEN.finditer(line):
            toks.append((m.group(0), lineno))
    return toks


# ---------------------------------------------------------------------------------------------
# The module tree.


def file_module(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel == ["lib"]:
        return ()
    return tuple(rel)


def rust_files(root):
    for dirpath, _, names in os.walk(root):
        for name in sorted(names):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            # main.rs and bin/ are separate crates that use the library by name.
            if rel == "main.rs" or rel.startswith("bin" + os.sep):
                continue
            yield path


IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
ITEM_KEYWORDS = {"fn", "struct", "enum", "trait", "type", "const", "static", "union", "macro_rules"}


class File:
    def __init__(self, root, path):
        self.path = os.path.relpath(path, os.path.dirname(os.path.dirname(root)))
        self.module = file_module(root, path)
        with open(path, encoding="utf-8") as f:
            self.toks = tokens(f.read())


def parse_use_tree(toks, i, prefix, out, line):
    """Parses one use tree at toks[i]; appends (path, alias, is_glob) to out; returns next i."""
    path = list(prefix)
    while i < len(toks):
        t = toks[i][0]
        if t == "{":
            i += 1
            while toks[i][0] != "}":
                i = parse_use_tree(toks, i, path, out, line)
                if toks[i][0] == ",":
                    i += 1
            return i + 1
        if t == "*":
            out.append((tuple(path), None, True, line))
            return i + 1
        if IDENT.match(t):
            path.append(t)
            i += 1
            if i < len(toks) and toks[i][0] == "::":
                i += 1
                continue
            alias = path[-1]
            if i + 1 < len(toks) and toks[i][0] == "as":
                alias = toks[i + 1][0]
                i += 2
            if path[-1] == "self":
                path.pop()
                if alias == "self":
                    alias = path[-1] if path else None
            out.append((tuple(path), alias, False, line))
            return i
        return i + 1
    return i


def scan(file):
    """Finds inline modules, items, use trees and code paths of one file.

    Returns (inline_modules, items, uses, paths): uses and paths carry the module they appear in.
    """
    toks = file.toks
    stack = [(file.module, -1)]  # (module path, brace depth at which it closes)
    depth = 0
    inline, items, uses, paths = [], defaultdict(set), [], []
    i = 0
    while i < len(toks):
        t, line = toks[i]
        here = stack[-1][0]
        prev = toks[i - 1][0] if i else ""
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
            if depth == stack[-1][1]:
                stack.pop()
        elif t == "mod" and i + 2 < len(toks) and IDENT.match(toks[i + 1][0]):
            name = toks[i + 1][0]
            if toks[i + 2][0] == "{":
                stack.append((here + (name,), depth))
                inline.append(here + (name,))
                depth += 1
                i += 3
                continue
        elif t in ITEM_KEYWORDS and i + 1 < len(toks) and IDENT.match(toks[i + 1][0]):
            if t == "macro_rules":
                items[here].add(toks[i + 2][0] if toks[i + 1][0] == "!" else toks[i + 1][0])
            else:
                items[here].add(toks[i + 1][0])
        elif t == "use" and prev not in ("::",):
            found = []
            j = parse_use_tree(toks, i + 1, [], found, line)
            for path, alias, glob, ln in found:
                uses.append((here, path, alias, glob, ln))
            while j < len(toks) and toks[j][0] != ";":
                j += 1
            i = j + 1
            continue
        elif IDENT.match(t) and prev != "::" and i + 1 < len(toks) and toks[i + 1][0] == "::":
            path = [t]
            j = i + 1
            while j + 1 < len(toks) and toks[j][0] == "::" and IDENT.match(toks[j + 1][0]):
                path.append(toks[j + 1][0])
                j += 2
            paths.append((here, tuple(path), line))
            i = j
            continue
        i += 1
    return inline, items, uses, paths


class Crate:
    def __init__(self, root):
        self.files = [File(root, p) for p in rust_files(root)]
        self.modules = {f.module for f in self.files}
        self.items = defaultdict(set)
        self.imports = defaultdict(dict)  # module -> name -> absolute path
        self.globs = defaultdict(list)  # module -> [absolute module path]
        self.scanned = []
        for f in self.files:
            inline, items, uses, paths = scan(f)
            self.modules.update(inline)
            for m, names in items.items():
                self.items[m] |= names
            self.scanned.append((f, uses, paths))
        for f, uses, _ in self.scanned:
            for here, path, alias, glob, _ in uses:
                absolute = self.absolute(here, path)
                if absolute is None:
                    continue
                if glob:
                    self.globs[here].append(absolute)
                elif alias and alias != "_":
                    self.imports[here][alias] = absolute

    def absolute(self, here, path):
        """The absolute path (a tuple from the crate root) of a path named in module `here`."""
        if not path:
            return None
        head, rest = path[0], list(path[1:])
        if head == "crate":
            base = ()
        elif head == "self":
            base = here
        elif head == "super":
            base = here[:-1]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        elif here + (head,) in self.modules:
            base, rest = here + (head,), rest
        else:
            return None  # another crate (std, tokio, kube, ...), a type, or a local name
        return base + tuple(rest)

    def target(self, path, seen=0):
        """The module that defines what an absolute path names, following re-exports."""
        mod = ()
        for k, seg in enumerate(path):
            nxt = mod + (seg,)
            if nxt in self.modules:
                mod = nxt
                continue
            if seen < 16:
                if seg in self.imports.get(mod, {}):
                    return self.target(self.imports[mod][seg] + tuple(path[k + 1 :]), seen + 1)
                if seg not in self.items.get(mod, ()):
                    for g in self.globs.get(mod, ()):
                        if seg in self.items.get(g, ()) or g + (seg,) in self.modules:
                            return self.target(g + tuple(path[k:]), seen + 1)
            return mod
        return mod

    def references(self):
        """Yields (from module, to module, file, line) for every reference inside the crate."""
        for f, uses, paths in self.scanned:
            for here, path, _, _, line in uses:
                absolute = self.absolute(here, path)
                if absolute is not None:
                    yield here, self.target(absolute), f.path, line
            for here, path, line in paths:
                absolute = self.absolute(here, path)
                if absolute is None:
                    # `alias::x` where alias is an imported module.
                    alias = self.lookup_alias(here, path[0])
                    if alias is None or alias not in self.modules:
                        continue
                    absolute = alias + tuple(path[1:])
                yield here, self.target(absolute), f.path, line

    def lookup_alias(self, here, name):
        m = here
        while True:
            if name in self.imports.get(m, {}):
                return self.imports[m][name]
            if not m:
                return None
            # A child module sees its own imports only; `use super::*` pulls in the parent's.
            if m[:-1] in self.globs.get(m, ()):
                m = m[:-1]
                continue
            return None


# ---------------------------------------------------------------------------------------------
# Sibling graphs and their strongly connected components.


def sibling_edges(crate):
    """level -> (from child, to child) -> first (file, line) seen."""
    edges = defaultdict(dict)
    for src, dst, path, line in crate.references():
        k = 0
        while k < len(src) and k < len(dst) and src[k] == dst[k]:
            k += 1
        if k < len(src) and k < len(dst):
            level = src[:k]
            edges[level].setdefault((src[k], dst[k]), (path, line))
    return edges


def components(nodes, edges):
    """Tarjan's algorithm; returns the components with more than one node."""
    index, low, on, stack, out = {}, {}, set(), [], []
    succ = defaultdict(list)
    for a, b in edges:
        succ[a].append(b)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def level_name(level):
    return "::".join(level) if level else "crate"


def main(argv):
    args = list(argv[1:])
    show = None
    if "--edges" in args:
        k = args.index("--edges")
        if k + 1 >= len(args):
            print(__doc__, file=sys.stderr)
            return 2
        show = args[k + 1]
        del args[k : k + 2]
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__, file=sys.stderr)
        return 2
    here = os.path.dirname(os.path.abspath(__file__))
    root = args[0] if args else os.path.join(here, "..", "..", "..", "agent", "src")
    root = os.path.normpath(root)
    if not os.path.isfile(os.path.join(root, "lib.rs")):
        print(f"module-cycles: no lib.rs in {root}", file=sys.stderr)
        return 2
    crate = Crate(root)
    edges = sibling_edges(crate)
    cycles = 0
    for level in sorted(edges, key=lambda lv: (len(lv), lv)):
        level_edges = edges[level]
        if show is not None and level_name(level) == show:
            for (a, b), (path, line) in sorted(level_edges.items()):
                print(f"{level_name(level)}: {a} -> {b}  ({path}:{line})")
        nodes = {a for a, _ in level_edges} | {b for _, b in level_edges}
        for comp in components(nodes, level_edges):
            cycles += 1
            members = set(comp)
            print(f"cycle in {level_name(level)}: {' <-> '.join(comp)}")
            for (a, b), (path, line) in sorted(level_edges.items()):
                if a in members and b in members:
                    print(f"  {a} -> {b}  ({path}:{line})")
    levels = len({lv for lv in edges} | {()})
    if cycles:
        print(f"module-cycles: {cycles} cycle(s) among sibling modules of {root}")
        return 1
    print(f"module-cycles: no cycles ({levels} module levels with sibling edges checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
