namespace Raft.Model;

/// <summary>A named fp32 tensor, row-major, as stored in a checkpoint (Hugging Face name and shape).</summary>
public sealed class Tensor
{
    /// <summary>Creates a tensor over existing data; the data length must match the shape.</summary>
    public Tensor(string name, int[] shape, float[] data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long n = 1;
        foreach (int s in shape)
        {
            if (s < 0) throw new ArgumentException($"tensor {name}: shape [{string.Join(", ", shape)}] has a negative dimension.", nameof(shape));
            n *= s;
        }
        if (n != data.Length)
            throw new ArgumentException($"tensor {name}: shape [{string.Join(", ", shape)}] needs {n} values, got {data.Length}.", nameof(data));
        Name = name; Shape = shape; Data = data;
    }

    /// <summary>Creates a zero tensor.</summary>
    public static Tensor Zeros(string name, params int[] shape)
    {
        long n = 1;
        foreach (int s in shape) n *= s;
        return new Tensor(name, shape, new float[n]);
    }

    /// <summary>The Hugging Face name (e.g. <c>model.layers.0.self_attn.q_proj.weight</c>).</summary>
    public string Name { get; }
    /// <summary>The shape, outermost first.</summary>
    public int[] Shape { get; }
    /// <summary>The values, row-major.</summary>
    public float[] Data { get; }
    /// <summary>Number of values.</summary>
    public int Length => Data.Length;
    /// <summary>The shape as text, e.g. [32000, 512].</summary>
    public string ShapeText => $"[{string.Join(", ", Shape)}]";
}

/// <summary>An ordered set of named tensors (a model's parameters, their gradients, or optimizer moments).</summary>
public sealed class TensorSet
{
    private readonly List<Tensor> _list = [];
    private readonly Dictionary<string, Tensor> _byName = new(StringComparer.Ordinal);

    /// <summary>The tensors, in insertion order.</summary>
    public IReadOnlyList<Tensor> Tensors => _list;
    /// <summary>Number of tensors.</summary>
    public int Count => _list.Count;
    /// <summary>Total number of values.</summary>
    public long ValueCount => _list.Sum(t => (long)t.Length);

    /// <summary>Adds a tensor; a repeated name is an error.</summary>
    public void Add(Tensor t)
    {
        if (!_byName.TryAdd(t.Name, t)) throw new ArgumentException($"tensor {t.Name} is already in the set.", nameof(t));
        _list.Add(t);
    }

    /// <summary>The tensor of that name; a missing name is an error naming it.</summary>
    public Tensor this[string name] => _byName.TryGetValue(name, out var t) ? t
        : throw new KeyNotFoundException($"tensor {name} is missing.");

    /// <summary>Looks a tensor up.</summary>
    public bool TryGet(string name, out Tensor tensor) => _byName.TryGetValue(name, out tensor!);

    /// <summary>Zeros with the same names and shapes (for gradients and moments).</summary>
    public TensorSet ZerosLike()
    {
        var s = new TensorSet();
        foreach (var t in _list) s.Add(Tensor.Zeros(t.Name, (int[])t.Shape.Clone()));
        return s;
    }

    /// <summary>A deep copy.</summary>
    public TensorSet Clone()
    {
        var s = new TensorSet();
        foreach (var t in _list) s.Add(new Tensor(t.Name, (int[])t.Shape.Clone(), (float[])t.Data.Clone()));
        return s;
    }
}
