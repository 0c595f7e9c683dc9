using Nethereum.ABI.FunctionEncoding.Attributes;
using Nethereum.Contracts;
using Nethereum.Hex.HexConvertors.Extensions;
using Nethereum.Web3.Accounts;
using PbsMarket.Core;
using PbsMarket.Testing;

namespace PbsMarket.L1.Tests;

[Function("randomnessAt", typeof(RandomnessAtOutput))]
public sealed class RandomnessAtFunction : FunctionMessage
{
    [Parameter("uint64", "epoch", 1)] public ulong Epoch { get; set; }
}

[FunctionOutput]
public sealed class RandomnessAtOutput : IFunctionOutputDTO
{
    [Parameter("bytes32", "randomness", 1)] public byte[] Randomness { get; set; } = new byte[32];
    [Parameter("uint64", "recordedFor", 2)] public ulong RecordedFor { get; set; }
}

[Function("requestExit")] public sealed class RequestExitFunction : FunctionMessage;

/// <summary>The C# protocol core computes exactly what the deployed contracts compute.</summary>
public sealed class ParityTests(TestServers servers)
{
    static readonly BigInteger MaxU256 = (BigInteger.One << 256) - 1;

    static BigInteger RandomU256(Random rng) => rng.Next(8) switch
    {
        0 => BigInteger.Zero,
        1 => MaxU256,
        2 => rng.Next(),
        _ => new BigInteger(RandomBytes(rng, 32), isUnsigned: true, isBigEndian: true),
    };

    static ulong RandomU64(Random rng) => rng.Next(6) switch { 0 => 0, 1 => ulong.MaxValue, 2 => (ulong)rng.Next(1000), _ => (ulong)rng.NextInt64() * 2 + (ulong)rng.Next(2) };

    static byte[] RandomBytes(Random rng, int n) { var b = new byte[n]; rng.NextBytes(b); return b; }

    static string Call<T>(T fn) where T : FunctionMessage, new() => fn.GetCallData().ToHex(true);

    static Hash32 AsHash(string result) => Hash32.Parse(result);
    static Address AsAddress(string result) => Address.FromBytes(Hex.Decode(result).AsSpan(12, 20));

    [Fact]
    public async Task Header_proposal_result_digests_leaves_and_recovery_match_the_contracts_for_random_inputs()
    {
        var anvil = await servers.AnvilAsync();
        var proposers = Enumerable.Range(0, 6).Select(_ => ProtocolKey.Generate()).ToList();
        var market = await Market.DeployAsync(anvil, AnvilNode.DevKeys[8], proposers);
        var inbox = market.Deployed.Inbox;

        Assert.Equal(market.Domain.Separator, await market.Client.DomainSeparatorAsync());
        Assert.Equal(proposers.Select(p => p.Address), await market.Client.ProposerSetAtAsync(0));

        var rng = new Random(20240611);
        const int cases = 40;
        var headers = new List<Header>();
        var proposals = new List<Proposal>();
        var results = new List<AuctionResult>();
        var keys = new List<ProtocolKey>();
        var calls = new List<(string, string)>();
        for (var i = 0; i < cases; i++)
        {
            var h = new Header(RandomU256(rng), RandomU64(rng), RandomU64(rng), Hash32.FromBytes(RandomBytes(rng, 32)), RandomU64(rng), RandomU64(rng),
                RandomU64(rng), Hash32.FromBytes(RandomBytes(rng, 32)), Address.FromBytes(RandomBytes(rng, 20)), Address.FromBytes(RandomBytes(rng, 20)),
                RandomU256(rng));
            var hash = Eip712.HashStruct(h);
            var p = rng.Next(4) == 0 ? Proposal.Fallback(h.Slot, hash)
                : new Proposal(h.Slot, hash, RandomU256(rng), Hash32.FromBytes(RandomBytes(rng, 32)), Address.FromBytes(RandomBytes(rng, 20)));
            var r = new AuctionResult(h.Slot, hash, RandomU256(rng), Hash32.FromBytes(RandomBytes(rng, 32)), (uint)rng.Next());
            var key = ProtocolKey.Generate();
            headers.Add(h); proposals.Add(p); results.Add(r); keys.Add(key);
            calls.Add((inbox, Call(new HashHeaderFunction { H = HeaderDto.From(h) })));
            calls.Add((inbox, Call(new HeaderDigestFunction { H = HeaderDto.From(h) })));
            calls.Add((inbox, Call(new ProposalDigestFunction { P = ProposalDto.From(p) })));
            calls.Add((inbox, Call(new AuctionResultDigestFunction { A = AuctionResultDto.From(r) })));
            calls.Add((inbox, Call(new BidsLeafFunction { HeaderHash = hash.ToArray(), ReceivedAtMs = h.TimestampMs })));
            var proposalDigest = Eip712.Digest(market.Domain, p);
            calls.Add((inbox, Call(new RecoverSignerFunction { Digest = proposalDigest.ToArray(), Signature = key.Sign(proposalDigest).ToArray() })));
        }
        var answers = await Rpc.BatchCallAsync(anvil.RpcUrl, calls);

        for (var i = 0; i < cases; i++)
        {
            var r = answers.AsSpan(i * 6, 6);
            var hash = Eip712.HashStruct(headers[i]);
            Assert.Equal(hash, AsHash(r[0]));
            Assert.Equal(Eip712.Digest(market.Domain, headers[i]), AsHash(r[1]));
            Assert.Equal(Eip712.Digest(market.Domain, proposals[i]), AsHash(r[2]));
            Assert.Equal(Eip712.Digest(market.Domain, results[i]), AsHash(r[3]));
            Assert.Equal(BidsMerkle.LeafHash(hash, headers[i].TimestampMs), AsHash(r[4]));
            Assert.Equal(keys[i].Address, AsAddress(r[5]));
        }
        Assert.Equal(Eip712.HashStruct(headers[0]), await market.Client.HashHeaderAsync(headers[0]));
        Assert.Equal(Eip712.Digest(market.Domain, proposals[1]), await market.Client.ProposalDigestAsync(proposals[1]));
        // The docs' vector header hashes the same on both sides.
        var vector = new Header(424242, 7, 3, Hash32.FromBytes(new byte[30].Concat(new byte[] { 0x12, 0x34 }).ToArray()), 1700000014000, 30000000, 21000,
            Keccak.Hash([0xc0]), Address.Parse("0x1111111111111111111111111111111111111111"), Address.Parse("0x2222222222222222222222222222222222222222"),
            BigInteger.Pow(10, 18));
        Assert.Equal(Hash32.Parse("0xafe67737fe8ebe34ade1f6f3c6dd78eb532939fbab17b2055085ba2146d4f509"), await market.Client.HashHeaderAsync(vector));
    }

    /// <summary>
    /// The seeded schedule: C#'s ProposerSchedule (seed from L1's recorded randomness through ProposerSchedule.Seed, set from
    /// proposerSetAt) picks exactly the registry's drawnProposerForSlot, for random slots of every epoch, while proposers join
    /// and leave and seeds are recorded epoch after epoch (L1 time driven with evm_increaseTime).
    /// </summary>
    [Fact]
    public async Task The_seeded_schedule_matches_the_registry_across_set_changes_seed_records_and_epochs()
    {
        var anvil = await servers.StartOwnAsync(new AnvilNode(blockTimeSeconds: null));
        var genesisKeys = Enumerable.Range(0, 3).Select(_ => NewKey()).ToList();
        var nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        const long slotMs = 2000, perEpoch = 8;
        var deployed = await Deployer.DeployAsync(anvil.RpcUrl, AnvilNode.DevKeys[0],
            new DeployParameters(Market.L2ChainId, nowMs, slotMs, perEpoch, GenesisProposers: [.. genesisKeys.Select(k => k.Address)]));
        var client = new InboxClient(L1Rpc.Connect(anvil.RpcUrl), deployed);
        var rng = new Random(7);
        var members = genesisKeys.ToList();
        var recorder = new InboxClient(L1Rpc.Connect(anvil.RpcUrl, TimeSpan.FromSeconds(30), new Account(AnvilNode.DevKeys[3], deployed.L1ChainId)), deployed);
        const int epochs = 7;
        var seedsRecorded = 0;

        async Task WarpToSlotAsync(ulong slot)
        {
            var targetSec = (nowMs + (long)slot * slotMs) / 1000 + 1;
            var block = await anvil.RpcAsync("eth_getBlockByNumber", ["latest", false]);
            var current = Convert.ToInt64(block.GetProperty("timestamp").GetString(), 16);
            if (targetSec > current) await anvil.RpcAsync("evm_setNextBlockTimestamp", [targetSec]);
            await anvil.RpcAsync("evm_mine", []);
        }

        for (var e = 0UL; e < epochs; e++)
        {
            // First half of epoch e: record the seed of e + 1 (sometimes skipped: the latest record at an epoch <= e + 1 then stands).
            await WarpToSlotAsync(e * (ulong)perEpoch + 1);
            if (rng.Next(4) != 0) { await recorder.RecordSeedAsync(); seedsRecorded++; }
            // Set changes (effective two epochs later): a joiner or a leaver, or both.
            if (rng.Next(3) != 0)
            {
                var joiner = NewKey();
                var hex = "0x" + Convert.ToHexStringLower(RandomBytesOf(joiner));
                await anvil.RpcAsync("anvil_setBalance", [joiner.Address.ToString(), "0x56bc75e2d63100000"]);
                var web3 = L1Rpc.Connect(anvil.RpcUrl, TimeSpan.FromSeconds(30), new Account(hex, deployed.L1ChainId));
                await new InboxClient(web3, deployed).JoinAsync(BigInteger.Parse(deployed.MinBond, System.Globalization.CultureInfo.InvariantCulture));
                members.Add(joiner);
            }
            if (members.Count > 2 && rng.Next(3) == 0)
            {
                var leaver = members[rng.Next(members.Count)];
                members.Remove(leaver);
                var web3 = L1Rpc.Connect(anvil.RpcUrl, TimeSpan.FromSeconds(30), new Account("0x" + Convert.ToHexStringLower(RandomBytesOf(leaver)), deployed.L1ChainId));
                await web3.Eth.GetContractTransactionHandler<RequestExitFunction>().SendRequestAndWaitForReceiptAsync(deployed.Registry, new RequestExitFunction());
            }
            await WarpToSlotAsync(e * (ulong)perEpoch + (ulong)perEpoch - 1);
        }
        Assert.True(seedsRecorded >= 3, $"only {seedsRecorded} seeds recorded");

        // Every epoch up to two past the last change: random slots, C# against the contract.
        var calls = new List<(string, string)>();
        var expected = new List<Address>();
        for (var e = 0UL; e < epochs + 2; e++)
        {
            var set = await client.ProposerSetAtAsync(e);
            var r = await client.Web3.Eth.GetContractQueryHandler<RandomnessAtFunction>()
                .QueryDeserializingToObjectAsync<RandomnessAtOutput>(new RandomnessAtFunction { Epoch = e }, deployed.Registry);
            var seed = ProposerSchedule.Seed(Hash32.FromBytes(r.Randomness), e);
            Assert.Equal(seed, await client.SeedOfAsync(e));
            for (var k = 0; k < 12; k++)
            {
                var slot = e * (ulong)perEpoch + (ulong)rng.Next((int)perEpoch);
                calls.Add((deployed.Registry, Call(new DrawnProposerForSlotFunction { Slot = slot })));
                expected.Add(set.Count == 0 ? Address.Zero : ProposerSchedule.ProposerFor(slot, seed, set));
            }
        }
        var answers = await Rpc.BatchCallAsync(anvil.RpcUrl, calls);
        Assert.Equal(expected, answers.Select(AsAddress));
        Assert.True(expected.Distinct().Count() >= 3, "the draws should spread over the set");
    }

    /// <summary>ProtocolKey hides its secret; the test keeps the bytes it generated.</summary>
    static byte[] RandomBytesOf(ProtocolKey key) => s_secrets[key.Address];

    static readonly Dictionary<Address, byte[]> s_secrets = [];

    static ProtocolKey NewKey()
    {
        while (true)
        {
            var secret = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
            try
            {
                var key = new ProtocolKey(secret);
                s_secrets[key.Address] = secret;
                return key;
            }
            catch (ArgumentException) { }
        }
    }
}
