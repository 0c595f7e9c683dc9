using System.Buffers.Binary;

namespace PbsMarket.Core;

/// <summary>
/// The bids root, byte-identical to <c>StandardMerkleTree.of(leaves, ["bytes32","uint64"])</c> from
/// @openzeppelin/merkle-tree 1.0.8: leaf = keccak(keccak(abi.encode(headerHash, receivedAtMs))), leaves sorted
/// ascending, stored at the end of an array of 2n-1 nodes in reverse (tree[2n-2-i] = leaf i), parent i =
/// keccak(sort(tree[2i+1], tree[2i+2])). Root 0x00..00 for no leaves.
/// </summary>
public static class BidsMerkle
{
    public static Hash32 LeafHash(Hash32 headerHash, ulong receivedAtMs)
    {
        Span<byte> enc = stackalloc byte[64];
        headerHash.Span.CopyTo(enc);
        enc[32..56].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(enc[56..], receivedAtMs);
        Span<byte> inner = stackalloc byte[32];
        Keccak.Hash(enc, inner);
        return Keccak.Hash(inner);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static Hash32 NodeHash(Hash32 a, Hash32 b)
    {
        Span<byte> buf = stackalloc byte[64];
        WritePair(a, b, buf);
        return Keccak.Hash(buf);
    }

    /// <summary>A node's preimage: the two children, lower first.</summary>
    static void WritePair(Hash32 a, Hash32 b, Span<byte> dest64)
    {
        if (a.CompareTo(b) <= 0) { a.Span.CopyTo(dest64); b.Span.CopyTo(dest64[32..]); }
        else { b.Span.CopyTo(dest64); a.Span.CopyTo(dest64[32..]); }
    }

    /// <summary>The whole tree in the library's array layout (empty for no leaves).</summary>
    public static Hash32[] Tree(IEnumerable<(Hash32 HeaderHash, ulong ReceivedAtMs)> leaves)
    {
        ArgumentNullException.ThrowIfNull(leaves);
        return TreeOfLeaves(leaves.Select(l => LeafHash(l.HeaderHash, l.ReceivedAtMs)));
    }

    /// <summary>The tree over leaf hashes already computed (<see cref="LeafHash"/>), in any order.</summary>
    // Run once per closed auction over thousands of leaves: compiled optimized at once rather than at tier 0.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static Hash32[] TreeOfLeaves(IEnumerable<Hash32> leafHashes)
    {
        ArgumentNullException.ThrowIfNull(leafHashes);
        var hashes = leafHashes.ToArray();
        if (hashes.Length == 0) return [];
        Array.Sort(hashes);
        var tree = new Hash32[2 * hashes.Length - 1];
        for (var i = 0; i < hashes.Length; i++) tree[tree.Length - 1 - i] = hashes[i];
        // Inner nodes from the last down, four at a time while the four's children (2i - 5 and up) are all above i.
        var node = tree.Length - 1 - hashes.Length;
        Span<byte> input = stackalloc byte[256], output = stackalloc byte[128];
        for (; node >= 6; node -= 4)
        {
            for (var k = 0; k < 4; k++) WritePair(tree[2 * (node - k) + 1], tree[2 * (node - k) + 2], input.Slice(64 * k, 64));
            KeccakF.Hash256x4Of64(input, output);
            for (var k = 0; k < 4; k++) tree[node - k] = Hash32.Own(output.Slice(32 * k, 32).ToArray());
        }
        for (; node >= 0; node--) tree[node] = NodeHash(tree[2 * node + 1], tree[2 * node + 2]);
        return tree;
    }

    public static Hash32 Root(IEnumerable<(Hash32 HeaderHash, ulong ReceivedAtMs)> leaves)
    {
        var tree = Tree(leaves);
        return tree.Length == 0 ? Hash32.Zero : tree[0];
    }

    /// <summary>The proof of one leaf, or null when it is not in the tree. Identical to the library's getProof.</summary>
    public static IReadOnlyList<Hash32>? Proof(IEnumerable<(Hash32 HeaderHash, ulong ReceivedAtMs)> leaves, Hash32 headerHash, ulong receivedAtMs) =>
        ProofFromTree(Tree(leaves), LeafHash(headerHash, receivedAtMs));

    /// <summary>The proof of a leaf hash in a tree built by <see cref="Tree"/>, or null when absent.</summary>
    public static IReadOnlyList<Hash32>? ProofFromTree(Hash32[] tree, Hash32 leafHash)
    {
        ArgumentNullException.ThrowIfNull(tree);
        var n = (tree.Length + 1) / 2;
        // Duplicated leaves: the library's lookup keeps the last one in sorted order, i.e. the lowest index.
        var index = -1;
        for (var i = tree.Length - n; i < tree.Length; i++)
        {
            if (tree[i] == leafHash) { index = i; break; }
        }
        if (index < 0) return null;
        var proof = new List<Hash32>();
        while (index > 0)
        {
            proof.Add(tree[index % 2 == 1 ? index + 1 : index - 1]);
            index = (index - 1) / 2;
        }
        return proof;
    }

    public static Hash32 ProcessProof(Hash32 leafHash, IEnumerable<Hash32> proof)
    {
        ArgumentNullException.ThrowIfNull(proof);
        var h = leafHash;
        foreach (var p in proof) h = NodeHash(h, p);
        return h;
    }

    public static bool VerifyLeaf(Hash32 root, Hash32 leafHash, IEnumerable<Hash32> proof) => ProcessProof(leafHash, proof) == root;

    public static bool Verify(Hash32 root, Hash32 headerHash, ulong receivedAtMs, IEnumerable<Hash32> proof) =>
        VerifyLeaf(root, LeafHash(headerHash, receivedAtMs), proof);
}
