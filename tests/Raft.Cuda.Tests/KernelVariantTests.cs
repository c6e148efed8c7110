namespace Raft.Cuda.Tests;

/// <summary>The host-side arithmetic of the kernel variants (no GPU needed): how a row is split over a cluster.</summary>
public class KernelVariantTests
{
    [Theory]
    [InlineData(1, 151936, 151936)]
    [InlineData(2, 151936, 75968)]
    [InlineData(4, 151936, 37984)]
    [InlineData(8, 151936, 18992)]
    [InlineData(8, 9, 4)]      // fewer logits than blocks: the later blocks own nothing
    [InlineData(4, 1003, 252)] // rounded up to a multiple of 4
    [InlineData(1, 1, 4)]
    public void ChunksCoverTheRowInMultiplesOfFour(int blocks, int vocab, int expected)
    {
        int chunk = CudaLossKernels.ResidentChunk(blocks, vocab);
        Assert.Equal(expected, chunk);
        Assert.Equal(0, chunk % 4);
        Assert.True((long)chunk * blocks >= vocab);
        Assert.True((long)(chunk - 4) * blocks < vocab, "the chunk is the smallest multiple of 4 that covers the row");
    }

    [Fact]
    public void SharedMemoryHoldsThePartItsAlignmentPadAndTheTeacherLogits()
    {
        Assert.Equal((18992 + 4 + 64) * 4, CudaLossKernels.ResidentSharedBytes(8, 151936, 64));
        Assert.Equal(512, CudaLossKernels.ResidentThreads(CudaLossKernels.ResidentSharedBytes(2, 32000, 64)));
        Assert.Equal(512, CudaLossKernels.ResidentThreads(CudaLossKernels.ResidentSharedBytes(8, 151936, 64)));
        Assert.Equal(1024, CudaLossKernels.ResidentThreads(CudaLossKernels.ResidentSharedBytes(4, 151936, 64)));
    }

    [Theory]
    [InlineData(DistillVariant.Auto, 0)]
    [InlineData(DistillVariant.TwoPass, 0)]
    [InlineData(DistillVariant.TwoPassL2, 0)]
    [InlineData(DistillVariant.Resident1, 1)]
    [InlineData(DistillVariant.Resident2, 2)]
    [InlineData(DistillVariant.Resident4, 4)]
    [InlineData(DistillVariant.Resident8, 8)]
    public void BlocksPerRowOfEachVariant(DistillVariant variant, int expected)
    {
        Assert.Equal(expected, CudaLossKernels.BlocksPerRow(variant));
        if (expected > 0) Assert.Equal("raft_kd_loss_resident" + expected, CudaLossKernels.ResidentEntry(expected));
    }

    [Fact]
    public void TheFilterKernelsLimitsMatchItsSource()
    {
        var source = KernelSources.Read(KernelSources.TopKSoftmax);
        Assert.Contains($"#define RAFT_TF_THREADS {CudaLossKernels.TopKFilterThreads}", source);
        // RAFT_TF_MAX_K = CAP - STEP = 4096 - 256 * 4 * 2
        Assert.Contains("#define RAFT_TF_CAP 4096", source);
        Assert.Contains("#define RAFT_TF_UNROLL 2", source);
        Assert.Equal(4096 - CudaLossKernels.TopKFilterThreads * 4 * 2, CudaLossKernels.TopKFilterMaxK);
    }
}
