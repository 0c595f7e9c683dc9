using Nethereum.Contracts;
using Nethereum.Hex.HexConvertors.Extensions;
using Nethereum.Web3.Accounts;
using PbsMarket.Core;
using PbsMarket.Testing;

namespace PbsMarket.L1.Tests;

/// <summary>Posting through L1Poster into a real inbox on anvil: settlement, events, refusals, equivocation.</summary>
public sealed class EndToEndTests(TestServers servers)
{
    static readonly BigInteger Milli = BigInteger.Pow(10, 15);
    static readonly L1PosterOptions Fast = new() { PollInterval = TimeSpan.FromMilliseconds(50), ReceiptTimeout = TimeSpan.FromSeconds(20) };

    [Fact]
    public async Task Batches_post_settle_emit_events_and_invalid_items_are_dropped_alone()
    {
        var anvil = await servers.AnvilAsync();
        var market = await Market.DeployAsync(anvil, AnvilNode.DevKeys[7], Market.DevProposers(1, 2, 3, 4));
        var builder = ProtocolKey.FromHex(AnvilNode.DevKeys[5]);
        await Deployer.DepositAsync(anvil.RpcUrl, market.Deployed, AnvilNode.DevKeys[5], BigInteger.Pow(10, 19), Market.Relay.Address);
        var client = market.Client;
        await using var poster = new L1Poster(client, AnvilNode.DevKeys[6], options: Fast);

        var escrowBefore = await client.EscrowBalanceAsync(builder.Address, Market.Relay.Address);
        var earningsBefore = new Dictionary<Address, BigInteger>();
        foreach (var p in market.Proposers) earningsBefore[p.Address] = await client.EarningsOfAsync(p.Address);

        // Batch 1: slots 10, 11, 12 chained from genesis; batch 2: 20, 21, 22 continuing.
        var items = new List<PostItem>();
        var parent = Hash32.Zero;
        ulong number = 1;
        foreach (var slot in new ulong[] { 10, 11, 12, 20, 21, 22 })
        {
            var item = market.Item(slot, number++, parent, builder, Milli * (long)slot);
            items.Add(item);
            parent = item.Header.Hash();
        }
        var first = await poster.PostAsync(items[..3]);
        Assert.All(first, o => Assert.Equal(PostStatus.Posted, o.Status));
        Assert.Equal([10UL, 11, 12], first.Select(o => o.Slot));
        Assert.Single(first.Select(o => o.TxHash).Distinct());
        var second = await poster.PostAsync(items[3..]);
        Assert.All(second, o => Assert.Equal(PostStatus.Posted, o.Status));
        Assert.NotEqual(first[0].TxHash, second[0].TxHash);

        Assert.Equal((items[5].Header.Hash(), 6UL), await client.HeadAsync());
        Assert.Equal(22UL, await client.LastPostedSlotAsync());
        Assert.Equal(items[4].Header.Hash(), await client.HeaderOfSlotAsync(21));
        Assert.Equal(items[0].BidsRoot, await client.BidsRootOfSlotAsync(10));

        var logs = await client.GetHeaderPostedAsync(market.Deployed.DeployedAtBlock);
        Assert.Equal(items.Select(i => i.Slot), logs.Select(l => l.Slot));
        Assert.Equal(items.Select(i => i.Header.Hash()), logs.Select(l => l.HeaderHash));
        Assert.Equal(items.Select(i => i.Price), logs.Select(l => l.Price));
        Assert.All(logs, l => Assert.Equal(builder.Address, l.Builder));
        Assert.All(logs, l => Assert.Equal(Market.Relay.Address, l.Relay));
        Assert.Equal(first[0].TxHash, logs[0].TxHash);
        Assert.Equal(first[0].BlockNumber, logs[0].BlockNumber);
        Assert.Equal(items.Select(i => i.Header.Proposer), logs.Select(l => l.Proposer));

        var total = items.Aggregate(BigInteger.Zero, (s, i) => s + i.Price);
        Assert.Equal(escrowBefore - total, await client.EscrowBalanceAsync(builder.Address, Market.Relay.Address));
        foreach (var p in market.Proposers)
        {
            var owed = items.Where(i => i.Header.Proposer == p.Address).Aggregate(BigInteger.Zero, (s, i) => s + i.Price);
            Assert.Equal(earningsBefore[p.Address] + owed, await client.EarningsOfAsync(p.Address));
        }

        // The same slot again: AlreadyPosted, nothing sent; on L1 an item behind the head is skipped, not a revert.
        var nonce = await market.NonceAsync(poster.Sender);
        var again = await poster.PostAsync([items[2]]);
        Assert.Equal(PostStatus.AlreadyPosted, Assert.Single(again).Status);
        Assert.Equal(items[2].Header.Hash(), again[0].HeaderHash);
        Assert.Equal(nonce, await market.NonceAsync(poster.Sender));
        Assert.Null(await client.SimulateAsync([items[2]]));

        // A batch with a bad builder signature and a header off the head among valid items: only those two are dropped.
        var ok30 = market.Item(30, 7, items[5].Header.Hash(), builder, Milli);
        var badSig = market.Item(31, 8, ok30.Header.Hash(), builder, Milli, signAs: ProtocolKey.Generate());
        var orphan = market.Item(32, 8, Keccak.Hash([1, 2, 3]), builder, Milli);
        var ok33 = market.Item(33, 8, ok30.Header.Hash(), builder, Milli);
        var mixed = await poster.PostAsync([ok33, orphan, badSig, ok30]);
        Assert.Equal([30UL, 31, 32, 33], mixed.Select(o => o.Slot));
        Assert.Equal(PostStatus.Posted, mixed[0].Status);
        Assert.Equal(PostStatus.Rejected, mixed[1].Status);
        Assert.Equal("BadBuilderSignature", mixed[1].Error?.Name);
        Assert.Equal(PostStatus.Rejected, mixed[2].Status);
        Assert.Equal("NotOnHead", mixed[2].Error?.Name);
        Assert.Equal(PostStatus.Posted, mixed[3].Status);
        Assert.Equal(mixed[0].TxHash, mixed[3].TxHash);
        Assert.Equal(nonce + 1, await market.NonceAsync(poster.Sender));
        Assert.True((await client.HeaderOfSlotAsync(31)).IsZero);
        Assert.Equal(ok33.Header.Hash(), (await client.HeadAsync()).HeaderHash);
    }

    [Fact]
    public async Task An_equivocation_report_burns_the_bond_once()
    {
        var anvil = await servers.AnvilAsync();
        var market = await Market.DeployAsync(anvil, AnvilNode.DevKeys[7], Market.DevProposers(1, 2, 3));
        var reporterAccount = new Account(AnvilNode.DevKeys[4], market.Deployed.L1ChainId);
        var reporter = new InboxClient(L1Rpc.Connect(anvil.RpcUrl, TimeSpan.FromSeconds(30), reporterAccount), market.Deployed);

        const ulong slot = 40;
        var proposer = market.ProposerOf(slot);
        var builder = ProtocolKey.Generate();
        var a = market.MakeHeader(slot, 1, Hash32.Zero, builder.Address, 5).Hash();
        var b = market.MakeHeader(slot, 1, Hash32.Zero, builder.Address, 6).Hash();
        // Version 2: the same header with another settlement is as much an equivocation as another header.
        var pa = new Proposal(slot, a, 5, Keccak.Hash([1]), Market.Relay.Address);
        var pb = new Proposal(slot, b, 6, Keccak.Hash([1]), Market.Relay.Address);
        var pa2 = pa with { Price = 0, Relay = Address.Zero, BidsRoot = Hash32.Zero };
        var sigA = proposer.Sign(Eip712.Digest(market.Domain, pa));
        var sigB = proposer.Sign(Eip712.Digest(market.Domain, pb));
        var sigA2 = proposer.Sign(Eip712.Digest(market.Domain, pa2));
        Assert.Null(await reporter.SimulateCallAsync(reporter.Inbox, new ReportEquivocationFunction
            { A = ProposalDto.From(pa), SigA = sigA.ToArray(), B = ProposalDto.From(pa2), SigB = sigA2.ToArray() }.GetCallData().ToHex(true), reporterAccount.Address));

        Assert.Equal(ProposerStatus.Active, (await reporter.ProposerInfoAsync(proposer.Address)).Status);
        var receipt = await reporter.ReportEquivocationAsync(pa, sigA, pb, sigB);
        var info = await reporter.ProposerInfoAsync(proposer.Address);
        Assert.Equal(ProposerStatus.Slashed, info.Status);
        var minBond = BigInteger.Parse(market.Deployed.MinBond, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(minBond, await reporter.TotalBurnedAsync());

        var reported = Assert.Single(await reporter.GetEquivocationReportedAsync(market.Deployed.DeployedAtBlock));
        Assert.Equal((slot, proposer.Address, Address.Parse(reporterAccount.Address), Eip712.HashStruct(pa), Eip712.HashStruct(pb), minBond),
            (reported.Slot, reported.Proposer, reported.Reporter, reported.ProposalHashA, reported.ProposalHashB, reported.Burned));
        Assert.Equal(receipt.TransactionHash, reported.TxHash);
        var slashed = Assert.Single(await reporter.GetProposerSlashedAsync(market.Deployed.DeployedAtBlock));
        Assert.Equal(proposer.Address, slashed.Proposer);

        var second = await Assert.ThrowsAsync<ContractRevertException>(() => reporter.ReportEquivocationAsync(pa, sigA, pb, sigB));
        Assert.Equal($"AlreadySlashed({proposer.Address})", second.Error.ToString());
        // Two signatures over the same proposal are no equivocation.
        var same = await Assert.ThrowsAsync<ContractRevertException>(() => reporter.ReportEquivocationAsync(pa, sigA, pa, sigA));
        Assert.Equal("SameProposal", same.Error.Name);
        // The slashed proposer's remaining slots are empty at once.
        Assert.True((await reporter.ProposerForSlotAsync(slot)).IsZero);
    }
}
