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
        WritePair(a.Span, b.Span, buf);
        return Keccak.Hash(buf);
    }

    /// <summary>A node's preimage: the two children, lower first.</summary>
    static void WritePair(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> dest64)
    {
        if (a.SequenceCompareTo(b) <= 0) { a.CopyTo(dest64); b.CopyTo(dest64[32..]); }
        else { b.CopyTo(dest64); a.CopyTo(dest64[32..]); }
    }

    /// <summary>The whole tree in the library's array layout (empty for no leaves).</summary>
    public static Hash32[] Tree(IEnumerable<(Hash32 HeaderHash, ulong ReceivedAtMs)> leaves)
    {
        ArgumentNullException.ThrowIfNull(leaves);
        return TreeOfLeaves(leaves.Select(l => LeafHash(l.HeaderHash, l.ReceivedAtMs)));
    }

    /// <summary>The tree over leaf hashes already computed (<see cref="LeafHash"/>), in any order.</summary>
    public static Hash32[] TreeOfLeaves(IEnumerable<Hash32> leafHashes)
    {
        var flat = FlatTree(leafHashes, out var nodes);
        var tree = new Hash32[nodes];
        for (var i = 0; i < nodes; i++) tree[i] = Hash32.FromBytes(flat.AsSpan(32 * i, 32));
        return tree;
    }

    /// <summary>
    /// The tree as one array of 32-byte nodes. The leaves are copied into values held inline (four big-endian words)
    /// before sorting, and every node is hashed in the one array: a close's leaves sit scattered over the heap, and
    /// sorting them where they lie costs a cache miss per comparison (measured: 6 ms over 10,000 leaves in a loop,
    /// 30-40 ms inside a relay after an auction of 10,000 bids).
    /// </summary>
    // Run once per closed auction over thousands of leaves: compiled optimized at once rather than at tier 0.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    static byte[] FlatTree(IEnumerable<Hash32> leafHashes, out int nodes)
    {
        ArgumentNullException.ThrowIfNull(leafHashes);
        var keys = leafHashes.Select(Word256.Of).ToArray();
        nodes = keys.Length == 0 ? 0 : 2 * keys.Length - 1;
        if (keys.Length == 0) return [];
        Array.Sort(keys);
        var flat = new byte[32 * nodes];
        Span<byte> Node(int i) => flat.AsSpan(32 * i, 32);
        for (var i = 0; i < keys.Length; i++) keys[i].Write(Node(nodes - 1 - i));
        // Inner nodes from the last down, four at a time while the four's children (2i - 5 and up) are all above i.
        var node = nodes - 1 - keys.Length;
        Span<byte> input = stackalloc byte[256], output = stackalloc byte[128];
        for (; node >= 6; node -= 4)
        {
            for (var k = 0; k < 4; k++) WritePair(Node(2 * (node - k) + 1), Node(2 * (node - k) + 2), input.Slice(64 * k, 64));
            KeccakF.Hash256x4Of64(input, output);
            for (var k = 0; k < 4; k++) output.Slice(32 * k, 32).CopyTo(Node(node - k));
        }
        for (; node >= 0; node--)
        {
            WritePair(Node(2 * node + 1), Node(2 * node + 2), input[..64]);
            Keccak.Hash(input[..64], Node(node));
        }
        return flat;
    }

    /// <summary>A 32-byte value as four big-endian words: ordered as unsigned integers, like <see cref="Hash32"/>.</summary>
    readonly record struct Word256(ulong A, ulong B, ulong C, ulong D) : IComparable<Word256>
    {
        public static Word256 Of(Hash32 h)
        {
            var s = h.Span;
            return new(BinaryPrimitives.ReadUInt64BigEndian(s), BinaryPrimitives.ReadUInt64BigEndian(s[8..]),
                BinaryPrimitives.ReadUInt64BigEndian(s[16..]), BinaryPrimitives.ReadUInt64BigEndian(s[24..]));
        }

        public void Write(Span<byte> dest)
        {
            BinaryPrimitives.WriteUInt64BigEndian(dest, A);
            BinaryPrimitives.WriteUInt64BigEndian(dest[8..], B);
            BinaryPrimitives.WriteUInt64BigEndian(dest[16..], C);
            BinaryPrimitives.WriteUInt64BigEndian(dest[24..], D);
        }

        public int CompareTo(Word256 o) =>
            A != o.A ? A.CompareTo(o.A) : B != o.B ? B.CompareTo(o.B) : C != o.C ? C.CompareTo(o.C) : D.CompareTo(o.D);
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
