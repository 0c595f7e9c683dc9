using Org.BouncyCastle.Crypto.Digests;

namespace PbsMarket.Core.Tests;

/// <summary>The relay's own Keccak-256 against published vectors and against BouncyCastle's, at every length around the
/// sponge's 136-byte rate and at random contents (seed logged).</summary>
public class KeccakTests
{
    [Theory]
    [InlineData("", "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")]
    [InlineData("abc", "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45")]
    [InlineData("The quick brown fox jumps over the lazy dog", "0x4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15")]
    public void Published_vectors(string text, string expected) =>
        Assert.Equal(expected, Keccak.Hash(System.Text.Encoding.ASCII.GetBytes(text)).ToString());

    [Fact]
    public void Equals_bouncy_castle_at_every_length_up_to_three_blocks()
    {
        var seed = Random.Shared.Next();
        TestContext.Current.TestOutputHelper?.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var reference = new KeccakDigest(256);
        for (var length = 0; length <= 3 * 136 + 1; length++)
        {
            for (var trial = 0; trial < 3; trial++)
            {
                var data = new byte[length];
                random.NextBytes(data);
                var expected = new byte[32];
                reference.BlockUpdate(data);
                reference.DoFinal(expected);
                Assert.True(expected.AsSpan().SequenceEqual(Keccak.Hash(data).Span), $"length {length}, seed {seed}");
            }
        }
    }

    [Fact]
    public void Four_64_byte_inputs_at_once_equal_four_single_hashes()
    {
        var seed = Random.Shared.Next();
        TestContext.Current.TestOutputHelper?.WriteLine($"seed {seed}, 256-bit vectors accelerated: {System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated}");
        var random = new Random(seed);
        var input = new byte[256];
        var output = new byte[128];
        for (var trial = 0; trial < 200; trial++)
        {
            random.NextBytes(input);
            if (trial == 0) Array.Clear(input);
            KeccakF.Hash256x4Of64(input, output);
            for (var i = 0; i < 4; i++)
                Assert.True(Keccak.Hash(input.AsSpan(64 * i, 64)).Span.SequenceEqual(output.AsSpan(32 * i, 32)), $"input {i}, trial {trial}, seed {seed}");
        }
    }

    [Fact]
    public void The_bids_tree_hashed_four_nodes_at_a_time_equals_the_tree_hashed_node_by_node()
    {
        var seed = Random.Shared.Next();
        TestContext.Current.TestOutputHelper?.WriteLine($"seed {seed}");
        var random = new Random(seed);
        foreach (var n in Enumerable.Range(0, 70).Concat([127, 128, 129, 1000, 1001]))
        {
            // Random leaves, then some sharing their first 8, 16 or 24 bytes with another (the sort's tie-breaks), and a duplicate.
            var leaves = Enumerable.Range(0, n).Select(_ => { var b = new byte[32]; random.NextBytes(b); return b; }).ToArray();
            for (var i = 1; i < n; i += 3) Array.Copy(leaves[i - 1], leaves[i], 8 * (1 + i % 3));
            if (n > 4) leaves[4] = (byte[])leaves[0].Clone();
            var hashes = leaves.Select(b => Hash32.FromBytes(b)).ToArray();
            var tree = BidsMerkle.TreeOfLeaves(hashes);
            var sorted = hashes.Order().ToArray();
            var reference = new Hash32[Math.Max(0, 2 * n - 1)];
            for (var i = 0; i < n; i++) reference[reference.Length - 1 - i] = sorted[i];
            for (var i = reference.Length - 1 - n; i >= 0; i--) reference[i] = BidsMerkle.NodeHash(reference[2 * i + 1], reference[2 * i + 2]);
            Assert.True(reference.SequenceEqual(tree), $"{n} leaves, seed {seed}");
        }
    }
}
