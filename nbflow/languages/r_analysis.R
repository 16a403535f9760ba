# nbflow's analysis of R cells, run by nbflow/languages/r.py in one Rscript call:
#   Rscript r_analysis.R IN.json OUT.json
# IN.json is {"cells": [source, ...], "parameters": source or null}; OUT.json has, per cell, either {"error", "line"} or
#   events     [[kind, name], ...] in execution order; kind is one of
#              read, write (definite), cwrite (inside if/for/while: may not happen),
#              mutate (a replacement function: x$a <- 1, names(x) <- ...), late (read when
#              a function defined here is called), import (library()/require())
#   functions  {name: {reads, writes}} for `name <- function(...) ...`
#   code       the cell's expressions deparsed: comments and layout do not matter
# "builtins": the names R defines before any code runs (base and default packages), and
# "parameters": the parameters cell's `name <- literal` lines (see parameters_of).
# Uses R's own parser (parse(), whose parse data getParseData() exposes) and jsonlite
# (an IRkernel dependency). Only reads its input and writes its output.

args <- commandArgs(trailingOnly = TRUE)
request <- jsonlite::fromJSON(args[[1]], simplifyVector = FALSE)
sources <- request$cells

SKIP <- c("quote", "bquote", "expression", "substitute", "~", "alist", "Negate")
IMPORT <- c("library", "require", "requireNamespace", "loadNamespace", "attachNamespace")
ASSIGN <- c("<-", "=", "<<-")

analyse_cell <- function(text) {
  events <- list()
  functions <- list()
  emit <- function(kind, name) {
    if (nzchar(name)) events[[length(events) + 1L]] <<- list(kind, name)
  }

  # names a function body reads from outside and assigns with <<-
  free_names <- function(fun) {
    inner <- list()
    collect <- function(kind, name) if (nzchar(name)) inner[[length(inner) + 1L]] <<- list(kind, name)
    formals_ <- names(fun[[2]])
    for (default in as.list(fun[[2]])) walk(default, TRUE, collect)
    walk(fun[[3]], TRUE, collect)
    kinds <- vapply(inner, `[[`, "", 1L)
    names_ <- vapply(inner, `[[`, "", 2L)
    local <- unique(c(formals_, names_[kinds %in% c("write", "cwrite")]))
    reads <- unique(names_[kinds %in% c("read", "late", "mutate") & !(names_ %in% local)])
    writes <- unique(names_[kinds == "global"])
    list(reads = as.list(reads), writes = as.list(writes))
  }

  target <- function(t, cond, out, super = FALSE) {
    if (is.symbol(t) || is.character(t)) {
      out(if (super) "global" else if (cond) "cwrite" else "write", as.character(t))
      return(invisible())
    }
    if (!is.call(t)) return(invisible())
    # f(x, args) <- v, x$a <- v, x[i] <- v, names(x)[2] <- v: x changes in place
    base <- t
    while (is.call(base)) {
      op <- base[[1]]
      rest <- as.list(base)[-(1:2)]
      if (identical(op, as.name("$")) || identical(op, as.name("@"))) rest <- list()
      for (a in rest) walk(a, cond, out)
      base <- base[[2]]
    }
    if (is.symbol(base) || is.character(base)) {
      name <- as.character(base)
      if (super) out("global", name) else out("mutate", name)
    }
  }

  walk <- function(e, cond, out) {
    if (missing(e)) return(invisible())
    if (is.symbol(e)) {
      out("read", as.character(e))
      return(invisible())
    }
    if (!is.call(e)) return(invisible())
    head <- e[[1]]
    fn <- if (is.symbol(head)) as.character(head) else ""
    args <- as.list(e)[-1]
    if (fn %in% ASSIGN && length(args) == 2L) {
      value <- args[[2]]
      if (is.call(value) && identical(value[[1]], as.name("function")) && is.symbol(args[[1]]) && !cond &&
          identical(out, emit)) {
        # a named function reads its free names when it is called, not here
        functions[[as.character(args[[1]])]] <<- free_names(value)
      } else {
        walk(value, cond, out)
      }
      target(args[[1]], cond, out, super = fn == "<<-")
    } else if (fn == "function") {
      info <- free_names(e)
      for (n in info$reads) out("late", n)
      for (n in info$writes) out("global", n)
    } else if (fn %in% c("{", "(")) {
      for (a in args) walk(a, cond, out)
    } else if (fn == "if") {
      walk(args[[1]], cond, out)
      for (a in args[-1]) walk(a, TRUE, out)
    } else if (fn == "for") {
      walk(args[[2]], cond, out)
      out("cwrite", as.character(args[[1]]))
      walk(args[[3]], TRUE, out)
    } else if (fn == "while") {
      walk(args[[1]], cond, out)
      walk(args[[2]], TRUE, out)
    } else if (fn == "repeat") {
      walk(args[[1]], TRUE, out)
    } else if (fn %in% SKIP || fn %in% c("::", ":::")) {
      return(invisible())
    } else if (fn %in% c("$", "@")) {
      walk(args[[1]], cond, out)
    } else if (fn %in% IMPORT) {
      pkg <- if (length(args)) args[[1]] else NULL
      character_only <- isTRUE(as.list(e)$character.only)
      if (is.character(pkg) || (is.symbol(pkg) && !character_only)) out("import", as.character(pkg))
      else if (!is.null(pkg)) walk(pkg, cond, out)
    } else if (fn == "assign" && length(args) >= 2L && is.character(args[[1]])) {
      for (a in args[-1]) walk(a, cond, out)
      out(if (cond) "cwrite" else "write", args[[1]])
    } else if (fn == "rm") {
      for (a in args) if (is.symbol(a)) out(if (cond) "cwrite" else "write", as.character(a))
    } else {
      if (nzchar(fn)) out("read", fn) else walk(head, cond, out)
      for (a in args) walk(a, cond, out)
    }
    invisible()
  }

  parsed <- tryCatch(parse(text = text, keep.source = TRUE), error = function(err) err)
  if (inherits(parsed, "error")) {
    message <- conditionMessage(parsed)
    line <- suppressWarnings(as.integer(sub("^<text>:([0-9]+):.*", "\\1", message)))
    return(list(error = sub("^<text>:[0-9]+:[0-9]+: ", "", strsplit(message, "\n")[[1]][1]),
                line = if (is.na(line)) NULL else line))
  }
  for (e in as.list(parsed)) walk(e, FALSE, emit)
  code <- paste(vapply(as.list(parsed), function(e) paste(deparse(e, control = NULL), collapse = "\n"), ""),
                collapse = "\n")
  list(events = events, functions = functions, code = code)
}

# The parameters cell: `name <- literal` lines only, the literal as {"t": type, "v": value}
# (numbers keep their source text: 10 is an int, 10.0 a float, as a Python reader expects).
parameters_of <- function(text) {
  parsed <- tryCatch(parse(text = text, keep.source = TRUE), error = function(err) err)
  if (inherits(parsed, "error")) return(list(error = strsplit(conditionMessage(parsed), "\n")[[1]][1]))
  data <- utils::getParseData(parsed)
  data <- data[data$terminal & data$token == "NUM_CONST", ]
  numbers <- data$text[order(data$line1, data$col1)]
  taken <- 0L
  literal <- function(e) {
    if (is.null(e)) return(list(t = "null"))
    if (is.call(e) && identical(e[[1]], as.name("-")) && length(e) == 2L && is.numeric(e[[2]])) {
      inner <- literal(e[[2]])
      inner$text <- paste0("-", inner$text)
      return(inner)
    }
    if (is.call(e) && as.character(e[[1]])[1] %in% c("c", "list")) {
      items <- as.list(e)[-1]
      keys <- names(items)
      values <- lapply(items, literal)
      if (any(vapply(values, is.null, TRUE))) return(NULL)
      if (!is.null(keys) && all(nzchar(keys))) {
        return(list(t = "dict", v = unname(Map(function(k, v) list(k, v), keys, values))))
      }
      if (!is.null(keys) && any(nzchar(keys))) return(NULL)
      return(list(t = "list", v = unname(values)))
    }
    if (!is.atomic(e) || length(e) != 1L) return(NULL)
    if (is.logical(e) || is.numeric(e)) {
      taken <<- taken + 1L
      text <- numbers[taken]
    }
    if (is.logical(e) && !is.na(e)) return(list(t = "bool", v = e))
    if (is.integer(e) && !is.na(e)) return(list(t = "int", v = e, text = text))
    if (is.double(e) && is.finite(e)) return(list(t = "num", v = e, text = text))
    if (is.character(e) && !is.na(e)) return(list(t = "str", v = e))
    NULL
  }
  refs <- attr(parsed, "srcref")
  found <- list()
  for (i in seq_along(parsed)) {
    e <- parsed[[i]]
    line <- refs[[i]][1]
    shown <- paste(as.character(refs[[i]]), collapse = " ")
    if (!(is.call(e) && as.character(e[[1]]) %in% c("<-", "=") && is.symbol(e[[2]]))) {
      return(list(error = "assignment", line = line, text = shown))
    }
    value <- literal(e[[3]])
    if (is.null(value)) {
      return(list(error = "literal", line = line, name = as.character(e[[2]]), text = paste(deparse(e[[3]]), collapse = " ")))
    }
    found[[length(found) + 1L]] <- list(name = as.character(e[[2]]), value = value)
  }
  list(parameters = found)
}

builtins <- unique(unlist(lapply(search(), ls, all.names = TRUE)))
result <- list(cells = lapply(sources, analyse_cell), builtins = builtins)
if (!is.null(request$parameters)) result$parameters <- parameters_of(request$parameters)
writeLines(jsonlite::toJSON(result, auto_unbox = TRUE, null = "null"), args[[2]], useBytes = TRUE)
