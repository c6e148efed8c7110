namespace Raft.Cli.Commands;

/// <summary>Seeded random logits for <c>raft kd --example</c>.</summary>
internal static class ExampleLogits
{
    /// <summary>Scale of the student logits (standard deviation).</summary>
    public const double StudentScale = 2.0;

    /// <summary>Standard deviation of the noise that separates the teacher from the student.</summary>
    public const double TeacherNoise = 1.0;

    /// <summary>
    /// Student logits [rows, vocab] ~ N(0, 2²) and teacher = student + N(0, 1²) noise, so the two
    /// distributions are close but differ and the loss is meaningful. Deterministic for a given seed.
    /// </summary>
    public static (float[] Student, float[] Teacher) Generate(int rows, int vocab, int seed)
    {
        var random = new Random(seed);
        int n = checked(rows * vocab);
        var student = new float[n];
        var teacher = new float[n];
        for (int i = 0; i < n; i++)
        {
            // Box–Muller: two independent standard normals from two uniforms.
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            double radius = Math.Sqrt(-2.0 * Math.Log(u1)), angle = 2.0 * Math.PI * u2;
            double s = StudentScale * radius * Math.Cos(angle);
            student[i] = (float)s;
            teacher[i] = (float)(s + TeacherNoise * radius * Math.Sin(angle));
        }
        return (student, teacher);
    }
}
