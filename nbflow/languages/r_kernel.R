# nbflow's helper in an R kernel (IRkernel), created once by the kernel executor as the
# hidden variable .nbflow. Uses only base R, jsonlite and digest (IRkernel's own dependencies).
#   .nbflow$dump(staging, names, required)  saveRDS per value into the staging folder; the
#       answer (files with size and SHA-256, value descriptions, values not saved) goes to
#       staging/dump.json, which the executor reads and removes before committing the entry.
#   .nbflow$restore(items)  items: list(list(name, path, packages), ...): attach the packages
#       that were attached when the value was made (library() calls are setup), then readRDS.
.nbflow <- local({
  dump <- function(staging, names, required) {
    dir.create(staging, recursive = TRUE, showWarnings = FALSE, mode = "0700")
    empty <- structure(list(), names = character(0))
    values <- empty
    files <- empty
    missing <- empty
    packages <- .packages()
    for (i in seq_along(names)) {
      name <- names[[i]]
      if (!exists(name, envir = globalenv(), inherits = FALSE)) next
      value <- get(name, envir = globalenv(), inherits = FALSE)
      file <- sprintf("value-%d.rds", i)
      path <- file.path(staging, file)
      failed <- tryCatch({
        saveRDS(value, path)
        NULL
      }, error = function(e) conditionMessage(e))
      if (!is.null(failed)) {
        unlink(path)
        if (name %in% required) missing[[name]] <- substr(paste("cannot be saved:", failed), 1, 300)
        next
      }
      files[[file]] <- list(size = file.size(path), sha256 = digest::digest(path, algo = "sha256", file = TRUE))
      shape <- dim(value)
      info <- list(
        file = file,
        type = paste("R", class(value)[1]),
        summary = if (is.null(shape)) paste(length(value), "items") else paste(shape, collapse = " x "),
        packages = I(packages)
      )
      if (is.atomic(value) && length(value) == 1L && is.null(shape)) {
        text <- paste(deparse(value), collapse = " ")
        if (nchar(text) <= 200) info$scalar <- text
      }
      values[[name]] <- info
    }
    answer <- list(values = values, missing = missing, files = files)
    writeLines(jsonlite::toJSON(answer, auto_unbox = TRUE, null = "null", digits = NA), file.path(staging, "dump.json"))
    invisible(NULL)
  }
  restore <- function(items) {
    for (item in items) {
      for (package in rev(unlist(item[[3]]))) {
        if (!(package %in% .packages())) {
          suppressPackageStartupMessages(library(package, character.only = TRUE))
        }
      }
      assign(item[[1]], readRDS(item[[2]]), envir = globalenv())
    }
    invisible(NULL)
  }
  environment()
})
