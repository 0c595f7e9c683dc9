using System.Numerics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using PbsMarket.Core;

BenchmarkSwitcher.FromAssembly(typeof(CryptoBench).Assembly).Run(args);

[MemoryDiagnoser]
public class CryptoBench
{
    private readonly ProtocolKey _key = ProtocolKey.FromHex("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
    private readonly Eip712Domain _domain = Eip712Domain.PbsMarket(31337, Address.Parse("0x5FbDB2315678afecb367f032d93F642f64180aa3"));
    private Header _header = null!;
    private Hash32 _digest;
    private Signature _sig;

    [GlobalSetup]
    public void Setup()
    {
        _header = new Header(42069, 12345, 678, Keccak.Hash("parent"u8), 1_700_000_000_000, 30_000_000, 21_000,
            Keccak.Hash("payload"u8), _key.Address, Address.Parse("0x70997970c51812dc3a010c7d01b50e0d17dc79c8"), BigInteger.Pow(10, 18));
        _digest = Eip712.Digest(_domain, _header);
        _sig = _key.Sign(_digest);
    }

    [Benchmark]
    public Hash32 HeaderHash() => Eip712.HashStruct(_header);

    [Benchmark]
    public Hash32 HeaderDigest() => Eip712.Digest(_domain, _header);

    [Benchmark]
    public Signature SignNative() => _key.Sign(_digest);

    [Benchmark]
    public bool RecoverNative() => SignatureRecovery.TryRecoverNative(_digest, _sig, out _);

    [Benchmark]
    public bool RecoverNethereum() => SignatureRecovery.TryRecoverManaged(_digest, _sig, out _);
}

[MemoryDiagnoser]
public class AuctionBench
{
    [Params(10_000)]
    public int Bids;

    private AcceptedBid[] _bids = null!;
    private (Hash32, ulong)[] _leaves = null!;
    private readonly Hash32 _head = Keccak.Hash("head"u8);

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        var builders = Enumerable.Range(0, 200).Select(i => Address.FromBytes(Keccak.Hash(BitConverter.GetBytes(i)).Span[..20])).ToArray();
        _bids = Enumerable.Range(0, Bids).Select(i => new AcceptedBid(
            Keccak.Hash(BitConverter.GetBytes(i)), builders[rng.Next(builders.Length)], rng.Next(1, 1_000_000),
            (ulong)(1_700_000_000_000 + i / 10), rng.Next(20) == 0 ? Keccak.Hash("old"u8) : _head, i, 21_000, 1)).ToArray();
        _leaves = _bids.Select(b => (b.HeaderHash, b.ReceivedAtMs)).ToArray();
        _leafHashes = _leaves.Select(l => BidsMerkle.LeafHash(l.Item1, l.Item2)).ToArray();
    }

    private Hash32[] _leafHashes = null!;

    /// <summary>The close's share of the bids root: the leaves are hashed as bids arrive, the close builds the tree.</summary>
    [Benchmark]
    public Hash32[] BidsTreeOfLeaves() => BidsMerkle.TreeOfLeaves(_leafHashes);

    [Benchmark]
    public AuctionOutcome Resolve() => AuctionRules.Resolve(_bids, _head, 1000, PriceRule.SecondPrice);

    [Benchmark]
    public Hash32 BidsRoot() => BidsMerkle.Root(_leaves);
}
