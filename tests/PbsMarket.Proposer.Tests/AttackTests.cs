using System.Text.Json;
using Nethereum.Contracts;
using Nethereum.Hex.HexConvertors.Extensions;
using Nethereum.Hex.HexTypes;
using Nethereum.RPC.Eth.DTOs;
using Nethereum.Web3.Accounts;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Proposer.Tests;

/// <summary>
/// Attacks on settlement through real servers (anvil with the v2 contracts, a relay on Redis and PostgreSQL, the proposer
/// client), each named for the attack and its outcome (docs/settlement.md, "Who can post, and races").
/// </summary>
public sealed class AttackTests(TestServers servers) : IAsyncLifetime
{
    TestMarket _m = null!;
    readonly List<IAsyncDisposable> _cleanup = [];
    readonly CancellationTokenSource _stop = new();

    public async ValueTask InitializeAsync() => _m = await TestMarket.StartAsync(servers);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try { await _m.Anvil.RpcAsync("evm_setIntervalMining", [1]); } catch (Exception e) when (e is not OutOfMemoryException) { }
        for (var i = _cleanup.Count - 1; i >= 0; i--) await _cleanup[i].DisposeAsync();
        await _m.DisposeAsync();
    }

    InboxClient Inbox() => new(L1Rpc.Connect(_m.Anvil.RpcUrl), _m.Deployment);

    /// <summary>A fresh L1 account with 100 ETH.</summary>
    async Task<Account> FundedAccountAsync()
    {
        var secret = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var account = new Account(secret, _m.Deployment.L1ChainId);
        await _m.Anvil.RpcAsync("anvil_setBalance", [account.Address, "0x56bc75e2d63100000"]);
        return account;
    }

    /// <summary>Pending transactions to the inbox from <paramref name="from"/> (anvil's txpool_content), with their input.</summary>
    async Task<List<(string Hash, string Input, BigInteger Tip)>> PendingPostsAsync(string from)
    {
        var pool = await _m.Anvil.RpcAsync("txpool_content", []);
        var found = new List<(string, string, BigInteger)>();
        if (!pool.TryGetProperty("pending", out var pending)) return found;
        foreach (var sender in pending.EnumerateObject())
        {
            if (!sender.Name.Equals(from, StringComparison.OrdinalIgnoreCase)) continue;
            foreach (var tx in sender.Value.EnumerateObject())
            {
                var to = tx.Value.GetProperty("to").GetString();
                if (!string.Equals(to, _m.Deployment.Inbox, StringComparison.OrdinalIgnoreCase)) continue;
                var tip = tx.Value.TryGetProperty("maxPriorityFeePerGas", out var t) ? new HexBigInteger(t.GetString()!).Value : BigInteger.Zero;
                found.Add((tx.Value.GetProperty("hash").GetString()!, tx.Value.GetProperty("input").GetString()!, tip));
            }
        }
        return found;
    }

    [Fact]
    public async Task An_attacker_racing_the_relay_to_L1_with_price_zero_a_lower_or_higher_price_or_another_bids_root_is_refused_and_the_slot_settles_at_the_auction_price()
    {
        var relay = await _m.StartRelayAsync();
        var options = Harness.Options(_m, Harness.TempDir(), Harness.Relay("relay", relay.Url, TestMarket.RelaySigner.Address));
        options.PostGraceMs = 120_000; // the client's own safety-net post stays out of this race
        var client = new ProposerClient(options, Harness.Loggers());
        _cleanup.Add(client);
        var reports = new Reports(client);
        _ = Task.Run(() => client.RunAsync(_stop.Token));
        var inbox = Inbox();
        var relaySender = TestMarket.RelaySigner.Address.ToString();

        for (var attempt = 0; attempt < 6; attempt++)
        {
            // Two builders: second price with a real runner-up above the reserve.
            var auction = await _m.NextAuctionAsync(relay.Client, 450);
            var high = TestMarket.Bid(auction, TestMarket.Builders[0], 90_000);
            var low = TestMarket.Bid(auction, TestMarket.Builders[1], 55_000);
            try
            {
                await relay.Client.SubmitAsync(low.Header, low.Signature, low.Payload);
                await relay.Client.SubmitAsync(high.Header, high.Signature, high.Payload);
            }
            catch (RelayRefusedException e) when (e.Code == "stale_parent") { continue; }
            var slot = auction.Slot;
            var winnerHash = high.Header.Hash();

            // The attacker watches the mempool for the relay's post of the slot; the moment it is there, L1 stops
            // mining (so the race is decided by the tip alone, in one block).
            (string Hash, string Input, BigInteger Tip)? relayTx = null;
            var deadline = DateTime.UtcNow.AddSeconds(8);
            while (relayTx is null && DateTime.UtcNow < deadline)
            {
                foreach (var tx in await PendingPostsAsync(relaySender))
                {
                    var decoded = new PostHeadersFunction().DecodeInput(tx.Input);
                    if (decoded.Items.Any(i => i.Header.Slot == slot)) { relayTx = tx; break; }
                }
                if (relayTx is null) await Task.Delay(10);
            }
            if (relayTx is null) continue;
            await _m.Anvil.RpcAsync("evm_setIntervalMining", [0]);
            if ((await PendingPostsAsync(relaySender)).All(t => t.Hash != relayTx.Value.Hash))
            {
                await _m.Anvil.RpcAsync("evm_setIntervalMining", [1]); // mined before we could stop it: try the next slot
                continue;
            }

            // Every public source carries the same item: the relay's pending calldata, GET /relay/v1/proposer/head, the data API.
            var item = new PostHeadersFunction().DecodeInput(relayTx.Value.Input).Items.Single(i => i.Header.Slot == slot);
            using (var head = await relay.Client.GetJsonAsync("relay/v1/proposer/head"))
            {
                if (head.RootElement.GetProperty("hash").GetString() != winnerHash.ToString())
                {
                    // The relay's head already moved past this slot (a loaded machine posts late): race on a later slot.
                    await _m.Anvil.RpcAsync("evm_setIntervalMining", [1]);
                    continue;
                }
                var published = Wire.ParseSettlementOf(head.RootElement).Value!;
                Assert.Equal(item.Price, published.Price);
                Assert.Equal(Hash32.FromBytes(item.BidsRoot), published.BidsRoot);
                Assert.NotNull(published.RunnerUp);
            }
            BigInteger auctionPrice;
            using (var data = await relay.Client.GetJsonAsync($"relay/v1/data/slots/{slot}"))
                auctionPrice = BigInteger.Parse(data.RootElement.GetProperty("price").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(new BigInteger(55_000), auctionPrice); // the runner-up's value
            Assert.Equal(auctionPrice, item.Price);
            Assert.Single(item.RunnerUp);

            // The attacks: the same signed header, proposal and relay signature, with another settlement, and a 10x tip.
            var variants = new (string Name, Action<PostedHeaderDto> Change)[]
            {
                ("price zero", i => { i.Price = 0; i.RunnerUp = []; }),
                ("a lower price", i => i.Price = auctionPrice - 1),
                ("a higher price (first price)", i => { i.Price = i.Header.Value; i.RunnerUp = []; }),
                ("another bids root", i => i.BidsRoot = Keccak.Hash("forged root"u8).ToArray()),
            };
            var attackerTxs = new List<(string Name, string Hash)>();
            foreach (var (name, change) in variants)
            {
                var forged = new PostHeadersFunction().DecodeInput(relayTx.Value.Input).Items.Single(i => i.Header.Slot == slot);
                change(forged);
                var account = await FundedAccountAsync();
                var web3 = L1Rpc.Connect(_m.Anvil.RpcUrl, TimeSpan.FromSeconds(10), account);
                var fn = new PostHeadersFunction { Items = [forged], Gas = 2_000_000, MaxPriorityFeePerGas = relayTx.Value.Tip * 10, MaxFeePerGas = relayTx.Value.Tip * 10 + 100_000_000_000 };
                var hash = await web3.Eth.GetContractTransactionHandler<PostHeadersFunction>().SendRequestAsync(_m.Deployment.Inbox, fn);
                attackerTxs.Add((name, hash));
            }
            await _m.Anvil.RpcAsync("evm_mine", []);
            await _m.Anvil.RpcAsync("evm_setIntervalMining", [1]);

            var relayReceipt = await inbox.Web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(relayTx.Value.Hash);
            Assert.NotNull(relayReceipt);
            Assert.Equal(1UL, (ulong)relayReceipt.Status.Value);
            foreach (var (name, hash) in attackerTxs)
            {
                var r = await inbox.Web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(hash);
                Assert.NotNull(r);
                // Mined before the relay's (earlier block, or the same block at an earlier index), and refused.
                Assert.True(r.BlockNumber.Value < relayReceipt.BlockNumber.Value
                    || (r.BlockNumber.Value == relayReceipt.BlockNumber.Value && r.TransactionIndex.Value < relayReceipt.TransactionIndex.Value),
                    $"{name}: the attacker's transaction was not mined before the relay's");
                Assert.True(r.Status.Value == 0, $"{name}: L1 accepted the attacker's post");
            }

            // The slot settled at exactly the auction's price, by the winner, at this relay.
            var posted = await inbox.HeaderPostedOfSlotAsync(slot);
            Assert.NotNull(posted);
            Assert.Equal(winnerHash, posted.HeaderHash);
            Assert.Equal(auctionPrice, posted.Price);
            Assert.Equal(TestMarket.RelaySigner.Address, posted.Relay);
            Assert.Equal(TestMarket.Builders[0].Address, posted.Builder);
            Assert.Equal(relayReceipt.TransactionHash, posted.TxHash);
            var report = await reports.ForSlotAsync(slot);
            Assert.Equal(SlotOutcome.Proposed, report.Outcome);
            return;
        }
        Assert.Fail("no slot in six gave the attacker a pending relay post to race");
    }

    [Fact]
    public async Task A_proposer_that_takes_the_relays_payload_then_posts_its_own_header_for_the_slot_ends_slashed_and_unscheduled()
    {
        var relay = await _m.StartRelayAsync();
        var inbox = Inbox();
        // The relay says when it has seen the slashing (an event): only from then on may the test expect it to act on it.
        await using var events = await RelayEvents.ListenAsync(relay.Url);
        for (var attempt = 0; attempt < 6; attempt++)
        {
            var auction = await _m.NextAuctionAsync(relay.Client, 450);
            var bid = TestMarket.Bid(auction, TestMarket.Builders[0], 70_000);
            try { await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload); }
            catch (RelayRefusedException e) when (e.Code == "stale_parent") { continue; }
            var slot = auction.Slot;
            var proposer = _m.ProposerOf(slot);
            await _m.WaitClosedAsync(slot);

            // The proposer signs the relay's header (Proposal v2 with the relay's settlement) and gets the payload...
            await _m.Anvil.RpcAsync("evm_setIntervalMining", [0]);
            var (status, body) = await relay.Client.PostRawAsync("relay/v1/proposer/proposals",
                await _m.ProposalBodyAsync(relay.Url, slot, bid.Header.Hash(), proposer));
            if (status != 200) { await _m.Anvil.RpcAsync("evm_setIntervalMining", [1]); continue; }
            Assert.Contains("payload", body);

            // ...then races its own block for the slot to L1 (its own header, price 0, no relay), with a higher tip.
            var head = await inbox.HeadAsync();
            var own = new Header(TestMarket.L2ChainId, slot, head.Number + 1, head.HeaderHash, _m.Clock.StartMs(slot), 30_000_000, 0,
                Keccak.Hash(PayloadCodec.Empty), proposer.Address, proposer.Address, 0);
            if (own.Number != bid.Header.Number) { await _m.Anvil.RpcAsync("evm_setIntervalMining", [1]); continue; } // L1 not level with the relay yet
            var ownItem = new PostItem(own, proposer.Sign(Eip712.Digest(_m.Domain, own)),
                proposer.Sign(Eip712.Digest(_m.Domain, Proposal.Fallback(slot, own.Hash()))), PayloadCodec.Empty, Settlement.None);
            var thief = L1Rpc.Connect(_m.Anvil.RpcUrl, TimeSpan.FromSeconds(10), await FundedAccountAsync());
            var theft = await thief.Eth.GetContractTransactionHandler<PostHeadersFunction>().SendRequestAsync(_m.Deployment.Inbox,
                new PostHeadersFunction { Items = [ownItem.ToDto()], Gas = 2_000_000, MaxPriorityFeePerGas = 50_000_000_000, MaxFeePerGas = 200_000_000_000 });
            // L1 takes a slot once it has started (block time in whole seconds).
            while (_m.Clock.NowMs < _m.Clock.StartMs(slot) + 1100) await Task.Delay(50);
            await _m.Anvil.RpcAsync("evm_mine", []);
            await _m.Anvil.RpcAsync("evm_setIntervalMining", [1]);

            // L1 took the proposer's own header; the relay sees it conflict with the proposal it holds, reports it, and the bond burns.
            var posted = await inbox.HeaderPostedOfSlotAsync(slot);
            if (posted is null || posted.HeaderHash != own.Hash())
            {
                var r = await inbox.Web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(theft);
                Assert.True(posted is not null, $"nothing posted for slot {slot}; the theft's receipt status {r?.Status?.Value}");
                continue; // the relay's post got in first: no theft this time
            }
            var until = DateTime.UtcNow.AddSeconds(30);
            while ((await inbox.ProposerInfoAsync(proposer.Address)).Status != ProposerStatus.Slashed && DateTime.UtcNow < until) await Task.Delay(200);
            Assert.Equal(ProposerStatus.Slashed, (await inbox.ProposerInfoAsync(proposer.Address)).Status);
            var report = Assert.Single(await inbox.GetEquivocationReportedAsync(_m.Deployment.DeployedAtBlock));
            Assert.Equal(proposer.Address, report.Proposer);
            Assert.Equal(TestMarket.RelaySigner.Address, report.Reporter);

            // Unscheduled: its remaining slots are empty on L1, and once the relay has seen the slashing it serves no
            // auction for them (one opened before it knew included).
            await events.WaitForAsync(TimeSpan.FromSeconds(30), "proposer_slashed", proposer.Address.ToString());
            var later = Enumerable.Range(1, 64).Select(i => slot + (ulong)i).First(s => _m.ProposerOf(s).Address == proposer.Address);
            Assert.True((await inbox.ProposerForSlotAsync(later)).IsZero);
            Assert.Equal(proposer.Address, await inbox.DrawnProposerForSlotAsync(later));
            var untilSlot = DateTime.UtcNow.AddMilliseconds((long)(_m.Clock.StartMs(later) - _m.Clock.NowMs) + 3000);
            while (_m.Clock.NowMs < _m.Clock.AuctionClosesMs(later) && DateTime.UtcNow < untilSlot)
            {
                try
                {
                    using var s = await relay.Client.GetJsonAsync("relay/v1/builder/auction");
                    Assert.NotEqual(later.ToString(), s.RootElement.TryGetProperty("slot", out var open) ? open.GetString() : null);
                }
                catch (RelayRefusedException e) when (e.Code == "unavailable") { } // no auction open at all: the slashed proposer's slot
                await Task.Delay(100);
            }
            return;
        }
        Assert.Fail("no slot in six let the proposer race its own header to L1");
    }
    [Fact]
    public async Task A_slashed_proposer_key_signs_nothing_for_its_remaining_slots()
    {
        // Slash one proposer on L1 with two different proposals of its own for one of its slots.
        var inbox = Inbox();
        var slot = _m.Clock.CurrentSlot + 2;
        var proposer = _m.ProposerOf(slot);
        var first = Proposal.Fallback(slot, Keccak.Hash("first"u8));
        var second = Proposal.Fallback(slot, Keccak.Hash("second"u8));
        var reporter = new InboxClient(L1Rpc.Connect(_m.Anvil.RpcUrl, TimeSpan.FromSeconds(10), await FundedAccountAsync()), _m.Deployment);
        await reporter.ReportEquivocationAsync(first, proposer.Sign(Eip712.Digest(_m.Domain, first)), second, proposer.Sign(Eip712.Digest(_m.Domain, second)));
        Assert.Equal(ProposerStatus.Slashed, (await inbox.ProposerInfoAsync(proposer.Address)).Status);

        // Its next drawn slot is empty on L1; the client holding its key must sign nothing for it (a block it signed there
        // would be refused by L1, and later slots that built on it would be lost with it).
        var later = Enumerable.Range(1, 64).Select(i => slot + (ulong)i).First(s => _m.ProposerOf(s).Address == proposer.Address);
        Assert.True((await inbox.ProposerForSlotAsync(later)).IsZero);
        await using var client = new ProposerClient(Harness.Options(_m, Harness.TempDir()), Harness.Loggers());
        await client.StartAsync();
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => client.RunSlotAsync(later, CancellationToken.None));
        Assert.Contains("no known proposer", refused.Message);
    }
}
