using System.Numerics.Tensors;

namespace Raft.Model.Ops;

/// <summary>
/// The SwiGLU gate: h = silu(g) ⊙ u with silu(g) = g·σ(g). Backward, with σ = σ(g):
/// dg = dh ⊙ u ⊙ σ(1 + g(1 − σ)), du = dh ⊙ g σ.
/// </summary>
internal static unsafe class SwiGlu
{
    private const int Chunk = 4096;

    /// <summary>h[N·F] = silu(g) ⊙ u.</summary>
    public static void Forward(ReadOnlySpan<float> g, ReadOnlySpan<float> u, Span<float> h, int threads)
    {
        // g, u, h: [N, F] (flattened)
        int total = g.Length;
        fixed (float* pg = g, pu = u, ph = h)
        {
            nint ag = (nint)pg, au = (nint)pu, ah = (nint)ph;
            Par.For((total + Chunk - 1) / Chunk, total > Chunk ? threads : 1, ci =>
            {
                int o = ci * Chunk, len = Math.Min(Chunk, total - o);
                var gs = new ReadOnlySpan<float>((float*)ag + o, len);
                var us = new ReadOnlySpan<float>((float*)au + o, len);
                var hs = new Span<float>((float*)ah + o, len);
                TensorPrimitives.Sigmoid(gs, hs);       // σ(g)
                TensorPrimitives.Multiply(hs, gs, hs);   // silu(g)
                TensorPrimitives.Multiply(hs, us, hs);   // · u
            });
        }
    }

    /// <summary>dg, du [N·F] from dh and the saved g, u.</summary>
    public static void Backward(ReadOnlySpan<float> dh, ReadOnlySpan<float> g, ReadOnlySpan<float> u,
        Span<float> dg, Span<float> du, int threads)
    {
        // dh, g, u, dg, du: [N, F] (flattened)
        int total = g.Length;
        fixed (float* pdh = dh, pg = g, pu = u, pdg = dg, pdu = du)
        {
            nint adh = (nint)pdh, ag = (nint)pg, au = (nint)pu, adg = (nint)pdg, adu = (nint)pdu;
            Par.For((total + Chunk - 1) / Chunk, total > Chunk ? threads : 1, ci =>
            {
                int o = ci * Chunk, len = Math.Min(Chunk, total - o);
                float* dhs = (float*)adh + o, gs = (float*)ag + o, us = (float*)au + o, dgs = (float*)adg + o, dus = (float*)adu + o;
                var sig = new Span<float>(dgs, len);
                TensorPrimitives.Sigmoid(new ReadOnlySpan<float>(gs, len), sig); // dg holds σ for now
                for (int i = 0; i < len; i++)
                {
                    float s = dgs[i], gv = gs[i], d = dhs[i];
                    dus[i] = d * gv * s;
                    dgs[i] = d * us[i] * s * (1f + gv * (1f - s));
                }
            });
        }
    }
}
