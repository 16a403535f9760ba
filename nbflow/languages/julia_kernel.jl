# nbflow's helper in a Julia kernel (IJulia), created once by the kernel executor as the
# module Main.__Nbflow. Standard library only (Serialization, SHA).
#   __Nbflow.dump(staging, names, required)  serialize each value into staging/value-<i>.jls;
#       the answer (files with size and SHA-256, value descriptions, values not saved) goes to
#       staging/dump.json, read and removed by the executor before it commits the entry.
#   __Nbflow.restore(items)  items: [(name, path), ...]: deserialize into Main.
module __Nbflow
using Serialization, SHA

jstr(s) = "\"" * escape_string(String(s)) * "\""
json(x::AbstractString) = jstr(x)
json(x::Integer) = string(x)
json(x::AbstractDict) = "{" * join([jstr(k) * ":" * json(v) for (k, v) in x], ",") * "}"

function dump(staging, names, required)
    mkpath(staging; mode = 0o700)
    values = Dict{String,Any}()
    files = Dict{String,Any}()
    missing = Dict{String,Any}()
    for (i, name) in enumerate(names)
        s = Symbol(name)
        isdefined(Main, s) || continue
        value = getfield(Main, s)
        value isa Module && continue
        file = "value-$i.jls"
        path = joinpath(staging, file)
        try
            serialize(path, value)
        catch e
            rm(path; force = true)
            name in required && (missing[name] = first("cannot be serialized: " * sprint(showerror, e), 300))
            continue
        end
        files[file] = Dict("size" => filesize(path), "sha256" => bytes2hex(open(sha256, path)))
        values[name] = Dict("file" => file, "type" => "Julia " * string(typeof(value)), "summary" => summary(value))
    end
    answer = Dict("values" => values, "missing" => missing, "files" => files)
    write(joinpath(staging, "dump.json"), json(answer))
    nothing
end

function restore(items)
    for (name, path) in items
        Core.eval(Main, Expr(:(=), Symbol(name), QuoteNode(deserialize(path))))
    end
    nothing
end
end
