using System.Text.Json;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Proposer;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Proposer.Tests;

/// <summary>The proposer client against real relays (Redis, PostgreSQL, anvil with the deployed contracts) and a rogue relay.</summary>
public sealed class ProposerClientTests(TestServers servers) : IAsyncLifetime
{
    TestMarket _m = null!;
    readonly List<IAsyncDisposable> _cleanup = [];
    readonly CancellationTokenSource _stop = new();

    public async ValueTask InitializeAsync() => _m = await TestMarket.StartAsync(servers);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        for (var i = _cleanup.Count - 1; i >= 0; i--) await _cleanup[i].DisposeAsync();
        await _m.DisposeAsync();
    }

    (ProposerClient Client, Reports Reports, Task Run) Run(ProposerOptions options, ProposerHooks? hooks = null,
        [System.Runtime.CompilerServices.CallerMemberName] string name = "")
    {
        var client = new ProposerClient(options, Harness.Loggers(name), hooks: hooks);
        _cleanup.Add(client);
        var reports = new Reports(client);
        var run = Task.Run(() => client.RunAsync(_stop.Token));
        return (client, reports, run);
    }

    InboxClient Inbox() => new(L1Rpc.Connect(_m.Anvil.RpcUrl), _m.Deployment);

    [Fact]
    public async Task With_two_relays_the_higher_valid_bid_is_signed_and_the_other_relay_adopts_it()
    {
        var a = await _m.StartRelayAsync();
        var b = await _m.StartRelayAsync(c =>
        {
            c["Relay:Network"] = _m.Network + "b";
            c["Relay:SigningKey"] = AnvilNode.DevKeys[8];
        });
        var (client, reports, _) = Run(Harness.Options(_m, Harness.TempDir(),
            Harness.Relay("relay-a", a.Url, TestMarket.RelaySigner.Address), Harness.Relay("relay-b", b.Url, Harness.RelayBSigner.Address)));

        // Both relays must be auctioning the same slot on the same head (the client's announcements keep them level).
        OpenAuction? auctionA = null, auctionB = null;
        (Header Header, Signature Signature, byte[] Payload) low = default, high = default;
        for (var attempt = 0; attempt < 10; attempt++)
        {
            auctionA = await _m.NextAuctionAsync(a.Client, 450);
            try { auctionB = await b.Client.GetAuctionAsync(); }
            catch (RelayRefusedException e) when (e.Code == "unavailable") { await Task.Delay(200); continue; } // relay B still syncing L1
            if (auctionA.Slot != auctionB.Slot || auctionA.ParentHash != auctionB.ParentHash) { await Task.Delay(200); continue; }
            low = TestMarket.Bid(auctionA, TestMarket.Builders[0], 5_000);
            high = TestMarket.Bid(auctionB, TestMarket.Builders[1], 9_000);
            try
            {
                await a.Client.SubmitAsync(low.Header, low.Signature, low.Payload);
                await b.Client.SubmitAsync(high.Header, high.Signature, high.Payload);
                break;
            }
            catch (RelayRefusedException e) when (e.Code == "stale_parent")
            {
                // The previous slot's head reached the relays just after we read the auction: bid on the next one.
                auctionA = null;
            }
        }
        Assert.NotNull(auctionA);
        var auction = auctionA!;
        Assert.Equal(auction.Slot, auctionB!.Slot);

        var report = await reports.ForSlotAsync(auction.Slot);
        Assert.Equal(SlotOutcome.Proposed, report.Outcome);
        Assert.Equal("relay-b", report.Source);
        Assert.Equal(high.Header!.Hash(), report.HeaderHash);
        Assert.Equal(9_000, report.Value);
        Assert.Equal(1_000, report.Price); // second price with one bid = the reserve
        Assert.Empty(report.Refusals);      // relay-a's lower bid was valid too, just lower

        // Relay B has the proposal; relay A adopted the announced head: its next auction builds on it.
        using (var slotB = await b.Client.GetJsonAsync($"relay/v1/data/slots/{auction.Slot}"))
            Assert.Contains(slotB.RootElement.GetProperty("status").GetString(), new[] { "proposed", "posted" });
        var adopted = false;
        // Until relay A's auction for the next slot shows the head, or has passed (a 503 while A opens that auction, at an
        // epoch's edge for instance, is waited out).
        var until = DateTime.UtcNow.AddSeconds(15);
        while (!adopted && DateTime.UtcNow < until)
        {
            PbsMarket.Builder.OpenAuction next;
            try { next = await a.Client.GetAuctionAsync(); }
            catch (RelayRefusedException e) when (e.Code == "unavailable") { await Task.Delay(20); continue; }
            if (next.Slot == auction.Slot + 1 && next.ParentHash == high.Header!.Hash() && next.Number == high.Header!.Number + 1) adopted = true;
            else if (next.Slot > auction.Slot + 1) break;
            else await Task.Delay(20);
        }
        Assert.True(adopted, "relay A did not adopt the head announced by the client");
        var snapshot = client.Metrics.Snapshot();
        Assert.Equal(1, snapshot.WonByRelay["relay-b"]);
        Assert.True(snapshot.ValueEarned >= 1_000);

        // And L1 gets the header (from whichever relay posts first).
        var inbox = Inbox();
        Hash32 onL1 = default;
        for (var i = 0; i < 100 && onL1.IsZero; i++)
        {
            onL1 = await inbox.HeaderOfSlotAsync(auction.Slot);
            if (onL1.IsZero) await Task.Delay(200);
        }
        Assert.Equal(high.Header!.Hash(), onL1);
    }

    [Fact]
    public async Task Headers_with_a_bad_builder_signature_wrong_parent_or_wrong_proposer_are_refused()
    {
        var real = await _m.StartRelayAsync();
        var rogue = await RogueRelay.StartAsync(_m.Domain);
        _cleanup.Add(rogue);
        var mode = "";
        var stranger = ProtocolKey.Generate();
        rogue.Offer = async slot =>
        {
            // Build on the real relay's current auction (its head), then spoil one thing; value far above the real bid.
            var auction = await real.Client.GetAuctionAsync();
            if (auction.Slot != slot) return null;
            var builder = TestMarket.Builders[2];
            var h = auction.HeaderFor(builder.Address, PayloadCodec.Empty, 0, 1_000_000_000);
            var signer = builder;
            switch (mode)
            {
                case "bad-signature": signer = stranger; break;
                case "wrong-parent": h = h with { ParentHash = Keccak.Hash([9, 9]) }; break;
                case "wrong-proposer": h = h with { Proposer = TestMarket.Proposers.First(p => p.Address != h.Proposer).Address }; break;
            }
            return (h, signer.Sign(Eip712.Digest(_m.Domain, h)));
        };
        // It also lies about the head (same number, its own hash): that must not move the client's view.
        rogue.Auction = () => mode == "wrong-parent" ? (_m.Clock.CurrentSlot + 1, Keccak.Hash([9, 9]), 0) : null;
        var (client, reports, _) = Run(Harness.Options(_m, Harness.TempDir(),
            Harness.Relay("rogue", rogue.Url, rogue.Key.Address), Harness.Relay("real", real.Url, TestMarket.RelaySigner.Address)));

        foreach (var (m, why) in new[] { ("bad-signature", "builder_signature"), ("wrong-parent", "parent"), ("wrong-proposer", "proposer") })
        {
            mode = m;
            var auction = await _m.NextAuctionAsync(real.Client, 450);
            var bid = TestMarket.Bid(auction, TestMarket.Builders[0], 4_000);
            try
            {
                await real.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
            }
            catch (RelayRefusedException e) when (e.Code == "stale_parent")
            {
                // The previous slot's head (the client's own block) reached the relay just after we read the auction.
                auction = await _m.NextAuctionAsync(real.Client, 450);
                bid = TestMarket.Bid(auction, TestMarket.Builders[0], 4_000);
                await real.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
            }
            var report = await reports.ForSlotAsync(auction.Slot);
            Assert.Equal(SlotOutcome.Proposed, report.Outcome);
            Assert.Equal("real", report.Source);
            Assert.Equal(bid.Header.Hash(), report.HeaderHash);
            Assert.Contains(report.Refusals, r => r.StartsWith("rogue: ", StringComparison.Ordinal) && r.Contains(why, StringComparison.Ordinal));
        }

        // With no real bid, the client's own block is used rather than the rogue header.
        mode = "bad-signature";
        var quiet = await _m.NextAuctionAsync(real.Client, 450);
        var fallback = await reports.ForSlotAsync(quiet.Slot);
        Assert.Equal(SlotOutcome.Fallback, fallback.Outcome);
        Assert.Equal(fallback.Proposer, fallback.Header!.Builder);
        Assert.Contains(fallback.Refusals, r => r.StartsWith("rogue: builder_signature", StringComparison.Ordinal));

        Assert.Empty(rogue.Proposals); // never signed a proposal for a rogue header
        Assert.True(client.Metrics.Snapshot().HeadersRefused >= 4);
    }

    [Fact]
    public async Task A_crash_after_the_journal_write_never_leads_to_signing_a_different_header_for_that_slot()
    {
        var rogue = await RogueRelay.StartAsync(_m.Domain);
        _cleanup.Add(rogue);
        var dataDir = Harness.TempDir();
        var slot = _m.Clock.CurrentSlot + 3;
        var proposer = _m.ProposerOf(slot).Address;
        BigInteger value = 7_000;
        Header Offered() => new(TestMarket.L2ChainId, slot, 1, Hash32.Zero, _m.Clock.StartMs(slot), 30_000_000, 0, Keccak.Hash(PayloadCodec.Empty),
            TestMarket.Builders[0].Address, proposer, value);
        rogue.Offer = _ => Task.FromResult<(Header, Signature)?>((Offered(), TestMarket.Builders[0].Sign(Eip712.Digest(_m.Domain, Offered()))));
        var relays = new[] { Harness.Relay("r", rogue.Url, rogue.Key.Address) };
        ProposerOptions Options(string dir) { var o = Harness.Options(_m, dir, relays); o.HeaderTimeoutMs = 2000; return o; }
        var first = Offered().Hash();

        // 1. The decision for `first` is journaled, then the process "dies" before the proposal leaves.
        var crashing = new ProposerClient(Options(dataDir), Harness.Loggers(),
            hooks: new ProposerHooks { AfterJournalWrite = (_, _) => throw new OperationCanceledException("simulated crash after the journal write") });
        await crashing.StartAsync();
        await Assert.ThrowsAsync<OperationCanceledException>(() => crashing.RunSlotAsync(slot, CancellationToken.None));
        await crashing.DisposeAsync();
        Assert.Empty(rogue.Proposals);

        // 2. A new process on the same journal is offered a different header for the slot: it refuses, and does not fall back either.
        value = 8_000;
        var restarted = new ProposerClient(Options(dataDir), Harness.Loggers());
        _cleanup.Add(restarted);
        await restarted.StartAsync();
        var refused = await restarted.RunSlotAsync(slot, CancellationToken.None);
        Assert.Equal(SlotOutcome.Missed, refused.Outcome);
        Assert.Contains("already signed " + first, refused.Detail, StringComparison.Ordinal);
        Assert.Empty(rogue.Proposals);
        Assert.Empty(rogue.Heads);
        Assert.Equal(1, restarted.Metrics.Snapshot().JournalRefusals);

        // 3. Offered the journaled header again, it completes the proposal it had decided on.
        value = 7_000;
        var completed = await restarted.RunSlotAsync(slot, CancellationToken.None);
        Assert.Equal(SlotOutcome.Proposed, completed.Outcome);
        var proposal = Assert.Single(rogue.Proposals);
        Assert.Equal(first, proposal.HeaderHash);
        Assert.True(SignatureRecovery.Verify(Eip712.Digest(_m.Domain, new Proposal(slot, first, TestMarket.ReservePrice, rogue.BidsRoot, rogue.Key.Address)), proposal.Signature, proposer));
        Assert.Equal(new Proposal(slot, first, TestMarket.ReservePrice, rogue.BidsRoot, rogue.Key.Address), proposal.Proposal);

        // 4. A corrupt journal stops the client from starting (fail closed), with a clear error.
        var corruptDir = Harness.TempDir();
        var path = SigningJournal.PathFor(corruptDir, TestMarket.Proposers[2].Address);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllTextAsync(path, "{\"version\":1,\"address\":\"" + TestMarket.Proposers[2].Address + "\",\"highest_slot\":\"5\",\"entries\":[{\"slot\":\"5\"");
        await using var broken = new ProposerClient(Options(corruptDir), Harness.Loggers());
        var error = await Assert.ThrowsAsync<SigningJournalException>(() => broken.StartAsync());
        Assert.Contains("corrupt", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_the_relays_down_the_clients_own_blocks_reach_L1_and_chain_on_each_other()
    {
        var relay = await _m.StartRelayAsync();
        var options = Harness.Options(_m, Harness.TempDir(), Harness.Relay("relay", relay.Url, TestMarket.RelaySigner.Address));
        options.MetricsPort = 0; // a free port; the client says which
        var (client, reports, _) = Run(options);

        // One slot through the relay...
        var auction = await _m.NextAuctionAsync(relay.Client, 450);
        var bid = TestMarket.Bid(auction, TestMarket.Builders[0], 6_000);
        await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
        var won = await reports.ForSlotAsync(auction.Slot);
        Assert.Equal(SlotOutcome.Proposed, won.Outcome);

        // ...then the relay goes away (with whatever it had not posted yet).
        await relay.StopAsync();
        var stoppedAfter = Math.Max(_m.Clock.CurrentSlot, won.Slot);
        var next = await reports.NextAsync(stoppedAfter, 2);
        Assert.All(next, r => Assert.Equal(SlotOutcome.Fallback, r.Outcome));
        Assert.Equal(next[0].HeaderHash, next[1].Header!.ParentHash);
        Assert.Equal(next[0].Header!.Number + 1, next[1].Header!.Number);

        var inbox = Inbox();
        foreach (var r in next)
        {
            Hash32 onL1 = default;
            for (var i = 0; i < 150 && onL1.IsZero; i++)
            {
                onL1 = await inbox.HeaderOfSlotAsync(r.Slot);
                if (onL1.IsZero) await Task.Delay(200);
            }
            Assert.Equal(r.HeaderHash, onL1);
        }
        var posted = await inbox.GetHeaderPostedAsync(_m.Deployment.DeployedAtBlock);
        var own = Assert.Single(posted, p => p.Slot == next[0].Slot);
        Assert.Equal(next[0].Proposer, own.Proposer);
        Assert.Equal(next[0].Proposer, own.Builder);
        Assert.Equal(BigInteger.Zero, own.Price);
        Assert.Equal(Hash32.Zero, own.BidsRoot);
        Assert.True(client.Metrics.Snapshot().PostedByClient >= 2);
        // The same counters in the Prometheus text of the client's /metrics (OpenTelemetry's exporter).
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var text = await http.GetStringAsync(client.MetricsUrl);
        long Value(string name)
        {
            // Without labels the exporter writes "name{} value" (valid exposition format) or "name value".
            var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(name + " ", StringComparison.Ordinal) || l.StartsWith(name + "{} ", StringComparison.Ordinal));
            Assert.True(line is not null, $"no {name} in\n{text}");
            return long.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        Assert.True(Value("pbs_proposer_l1_posts_total") >= 2, text);
        Assert.True(Value("pbs_proposer_fallbacks_total") >= 2, text);
        Assert.Contains("pbs_proposer_won_total{relay=\"relay\"} 1", text);
        Assert.True(client.Metrics.Snapshot().Fallbacks >= 2);
    }
}
