# nbflow's analysis of Julia cells, run by nbflow/languages/julia.py in one julia call:
#   julia --startup-file=no julia_analysis.jl FOLDER
# FOLDER holds cell-<i>.jl (the cells) and, optionally, parameters.jl; the answer is written
# to FOLDER/out.json with the same fields as r_analysis.R's: per cell "events" ([kind, name]
# in execution order: read, write, cwrite, mutate, late, global, import), "functions" and
# "code" (the parsed expressions without line numbers), or "error"/"line"; "builtins"
# (Base's and Core's names) and "parameters". Uses Julia's own parser (Meta.parseall) and
# the standard library only; writes nothing but out.json.

const ASSIGN_OPS = Symbol.(["+=", "-=", "*=", "/=", "^=", "÷=", "%=", "|=", "&=", ".+=", ".-=", ".*=", "./="])

jstr(s) = "\"" * escape_string(String(s)) * "\""
json(x::AbstractString) = jstr(x)
json(x::Symbol) = jstr(x)
json(x::Bool) = x ? "true" : "false"
json(x::Integer) = string(x)
json(x::AbstractFloat) = isfinite(x) ? repr(Float64(x)) : "null"
json(::Nothing) = "null"
json(x::AbstractVector) = "[" * join(json.(x), ",") * "]"
json(x::Tuple) = json(collect(Any, x))
json(x::AbstractDict) = "{" * join([jstr(k) * ":" * json(v) for (k, v) in x], ",") * "}"

function analyse_cell(text)
    events = Any[]
    functions = Dict{String,Any}()
    emit(kind, name) = push!(events, [kind, String(name)])

    function free_names(args, body)
        inner = Any[]
        collect!(kind, name) = push!(inner, (kind, String(name)))
        formals = Set{String}()
        for a in args
            a isa Symbol && push!(formals, String(a))
            a isa Expr && a.head in (:(::), :kw, :(=)) && a.args[1] isa Symbol && push!(formals, String(a.args[1]))
            a isa Expr && a.head == :parameters && foreach(p -> p isa Expr && p.args[1] isa Symbol && push!(formals, String(p.args[1])), a.args)
        end
        walk(body, true, collect!)
        locals = union(formals, Set(n for (k, n) in inner if k in ("write", "cwrite")))
        reads = unique([n for (k, n) in inner if k in ("read", "late", "mutate") && !(n in locals)])
        writes = unique([n for (k, n) in inner if k == "global"])
        Dict("reads" => reads, "writes" => writes)
    end

    function target(t, cond, out)
        if t isa Symbol
            out(cond ? "cwrite" : "write", t)
        elseif t isa Expr && t.head == :tuple
            foreach(a -> target(a, cond, out), t.args)
        elseif t isa Expr && t.head in (:ref, :., :(::))
            base = t
            while base isa Expr && base.head in (:ref, :., :(::))
                base.head == :ref && foreach(a -> walk(a, cond, out), base.args[2:end])
                base = base.args[1]
            end
            base isa Symbol && out("mutate", base)
        end
    end

    function walk(e, cond, out)
        if e isa Symbol
            out("read", e)
        elseif e isa QuoteNode || e isa LineNumberNode || !(e isa Expr)
            return
        elseif e.head == :(=) && e.args[1] isa Expr && e.args[1].head in (:call, :where)
            define(e.args[1], e.args[2], cond, out)
        elseif e.head == :function && length(e.args) == 2
            define(e.args[1], e.args[2], cond, out)
        elseif e.head == :(=)
            walk(e.args[2], cond, out)
            target(e.args[1], cond, out)
        elseif e.head in ASSIGN_OPS
            walk(e.args[2], cond, out)
            e.args[1] isa Symbol ? (out("read", e.args[1]); out(cond ? "cwrite" : "write", e.args[1])) : target(e.args[1], cond, out)
        elseif e.head == :global && any(a -> a isa Expr && a.head == :(=), e.args)
            foreach(a -> walk(a, cond, out), e.args)
        elseif e.head == :->
            info = free_names(e.args[1] isa Expr && e.args[1].head == :tuple ? e.args[1].args : [e.args[1]], e.args[2])
            foreach(n -> out("late", n), info["reads"])
        elseif e.head in (:using, :import)
            for a in e.args
                path = a isa Expr && a.head == :(:) ? a.args[1] : a
                path isa Expr && !isempty(path.args) && out("import", path.args[end] isa Symbol ? path.args[end] : path.args[1])
            end
        elseif e.head in (:if, :elseif)
            walk(e.args[1], cond, out)
            foreach(a -> walk(a, true, out), e.args[2:end])
        elseif e.head == :for
            specs = e.args[1].head == :block ? e.args[1].args : [e.args[1]]  # for i in a, j in b
            for spec in specs
                spec isa Expr || continue
                walk(spec.args[2], cond, out)
                target(spec.args[1], true, out)
            end
            walk(e.args[2], true, out)
        elseif e.head == :while
            walk(e.args[1], cond, out)
            walk(e.args[2], true, out)
        elseif e.head in (:quote, :inert, :meta)
            return
        elseif e.head == :.
            walk(e.args[1], cond, out)
        elseif e.head == :call
            f = e.args[1]
            f isa Symbol ? out("read", f) : walk(f, cond, out)
            args = [a isa Expr && a.head == :kw ? a.args[2] : a for a in e.args[2:end]]
            # a function whose name ends in ! changes its first argument (Julia's convention)
            if f isa Symbol && endswith(String(f), "!") && !isempty(args) && args[1] isa Symbol
                out("mutate", args[1])
            end
            foreach(a -> walk(a, cond, out), args)
        elseif e.head == :macrocall
            foreach(a -> walk(a, cond, out), e.args[2:end])
        else
            foreach(a -> walk(a, cond, out), e.args)
        end
    end

    function define(signature, body, cond, out)
        call = signature
        while call isa Expr && call.head in (:where, :(::))
            call = call.args[1]
        end
        name = call.args[1]
        info = free_names(call.args[2:end], body)
        if name isa Symbol && !cond && out === emit
            functions[String(name)] = info
        else
            foreach(n -> out("late", n), info["reads"])
        end
        name isa Symbol && out(cond ? "cwrite" : "write", name)
    end

    parsed = Meta.parseall(text)
    for e in parsed.args
        if e isa Expr && e.head in (:error, :incomplete)
            return Dict("error" => string(e.args[1]), "line" => nothing)
        end
    end
    for e in parsed.args
        walk(e, false, emit)
    end
    code = join([string(Base.remove_linenums!(e)) for e in parsed.args if !(e isa LineNumberNode)], "\n")
    Dict("events" => events, "functions" => functions, "code" => code)
end

function literal(e)
    e === nothing && return Dict("t" => "null")
    e === :nothing && return Dict("t" => "null")
    e isa Bool && return Dict("t" => "bool", "v" => e)
    e isa Integer && return Dict("t" => "int", "v" => e, "text" => string(e))
    e isa AbstractFloat && return Dict("t" => "num", "v" => e, "text" => repr(Float64(e)))
    e isa AbstractString && return Dict("t" => "str", "v" => e)
    if e isa Expr && e.head == :call && e.args[1] == :- && length(e.args) == 2 && e.args[2] isa Real
        inner = literal(e.args[2])
        inner["text"] = "-" * inner["text"]
        return inner
    end
    if e isa Expr && e.head == :vect
        items = literal.(e.args)
        return any(isnothing, items) ? nothing : Dict("t" => "list", "v" => items)
    end
    if e isa Expr && e.head == :call && e.args[1] == :Dict
        pairs = Any[]
        for p in e.args[2:end]
            (p isa Expr && p.head == :call && p.args[1] == :(=>) && p.args[2] isa String) || return nothing
            v = literal(p.args[3])
            v === nothing && return nothing
            push!(pairs, [p.args[2], v])
        end
        return Dict("t" => "dict", "v" => pairs)
    end
    nothing
end

function parameters_of(text)
    parsed = Meta.parseall(text)
    found = Any[]
    line = 0
    for e in parsed.args
        e isa LineNumberNode && (line = e.line; continue)
        e isa Expr && e.head in (:error, :incomplete) && return Dict("error" => string(e.args[1]))
        if !(e isa Expr && e.head == :(=) && e.args[1] isa Symbol)
            return Dict("error" => "assignment", "line" => line, "text" => string(e))
        end
        value = literal(e.args[2])
        value === nothing && return Dict("error" => "literal", "line" => line, "name" => String(e.args[1]), "text" => string(e.args[2]))
        push!(found, Dict("name" => String(e.args[1]), "value" => value))
    end
    Dict("parameters" => found)
end

folder = ARGS[1]
cells = Any[]
i = 0
while isfile(joinpath(folder, "cell-$i.jl"))
    push!(cells, analyse_cell(read(joinpath(folder, "cell-$i.jl"), String)))
    global i += 1
end
builtins = unique(vcat(String.(names(Base)), String.(names(Core))))
answer = Dict{String,Any}("cells" => cells, "builtins" => builtins)
params = joinpath(folder, "parameters.jl")
isfile(params) && (answer["parameters"] = parameters_of(read(params, String)))
write(joinpath(folder, "out.json"), json(answer))
