using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PbsMarket.Core;
using OpenTelemetry.Metrics;
using PbsMarket.L1;

namespace PbsMarket.Proposer;

/// <summary>Test seams. <see cref="AfterJournalWrite"/> runs after a decision is durably journaled and before the Proposal
/// signature is made or sent; throwing from it simulates a crash at that point.</summary>
public sealed class ProposerHooks
{
    public Func<ulong, Header, Task>? AfterJournalWrite { get; init; }
}

/// <summary>A head candidate: a header hash with its number (and slot, when known).</summary>
public sealed record HeadRef(Hash32 Hash, ulong Number, ulong? Slot, string Source)
{
    public static readonly HeadRef Genesis = new(Hash32.Zero, 0, null, "genesis");
}

/// <summary>
/// The proposer client: for every slot led by one of its keys, at the auction close it asks every relay for the
/// winning header, checks the offers, records its decision in the signing journal, signs the best one and fetches its
/// payload; when nothing usable arrives it proposes its own empty block. Every signed header is announced to the relays
/// and, if L1 still lacks it after a grace period, posted by the client itself. See docs/protocol.md "Proposer client".
/// </summary>
public sealed class ProposerClient : IAsyncDisposable
{
    readonly ProposerOptions _o;
    readonly ILogger _log;
    readonly ILoggerFactory _loggers;
    readonly TimeProvider _time;
    readonly ProposerHooks _hooks;
    readonly SlotClock _clock;
    readonly Eip712Domain _domain;
    readonly List<RelayClient> _relays;
    readonly Dictionary<Address, (LoadedKey Key, SigningJournal Journal)> _keys = [];
    readonly ConcurrentDictionary<ulong, Task<IReadOnlyList<Address>>> _sets = new();
    readonly ConcurrentDictionary<ulong, Hash32> _finalSeeds = new();
    InboxClient? _seedRecorder;
    ulong? _seedDoneFor;
    (PriceRule Rule, BigInteger Reserve) _rules;
    readonly Dictionary<Hash32, HeadRef> _ownHeads = [];
    readonly Channel<PostItem> _posts = Channel.CreateUnbounded<PostItem>();
    readonly ConcurrentDictionary<Task, byte> _background = new();
    readonly CancellationTokenSource _lifetime = new();
    InboxClient _inbox = null!;
    L1Poster? _poster;
    HeadRef _l1Head = HeadRef.Genesis;
    Task? _postWorker;
    WebApplication? _metricsServer;
    bool _started;

    public ProposerClient(ProposerOptions options, ILoggerFactory? loggers = null, TimeProvider? time = null, ProposerHooks? hooks = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _o = options.Resolve();
        _loggers = loggers ?? NullLoggerFactory.Instance;
        _log = _loggers.CreateLogger("PbsMarket.Proposer");
        _time = time ?? TimeProvider.System;
        _hooks = hooks ?? new ProposerHooks();
        _clock = _o.Clock(_time);
        _domain = _o.Domain;
        _relays = [.. _o.Relays.Select(r => new RelayClient(r, TimeSpan.FromMilliseconds(_o.RelayConnectTimeoutMs)))];
    }

    public ProposerMetrics Metrics { get; } = new();
    /// <summary>Where Prometheus scrapes this client (with <see cref="ProposerOptions.MetricsPort"/>; port 0 picks a free one), after <see cref="StartAsync"/>.</summary>
    public string? MetricsUrl { get; private set; }

    /// <summary>Time since a start on the client's clock (<see cref="TimeProvider"/>; a test's fake clock too).</summary>
    readonly struct Elapsed(TimeProvider time, long start)
    {
        public long ElapsedMilliseconds => (long)time.GetElapsedTime(start).TotalMilliseconds;
    }
    /// <summary>The addresses of the keys this client runs (after <see cref="StartAsync"/>).</summary>
    public IReadOnlyList<Address> Addresses => [.. _keys.Keys];
    /// <summary>Raised once per led slot, after its outcome is known.</summary>
    public event Action<SlotReport>? SlotCompleted;

    /// <summary>Loads the keys and opens their journals (throws on a corrupt or locked journal: fail closed), connects to L1,
    /// starts the L1 post worker and, if configured, the metrics endpoint.</summary>
    public async Task StartAsync(CancellationToken ct = default)
    {
        if (_started) return;
        var keys = ProposerKeys.Load(_o.Keys, warning => _log.LogWarning("{Warning}", warning));
        try
        {
            foreach (var k in keys) _keys[k.Address] = (k, SigningJournal.Open(_o.DataDir, k.Address));
        }
        catch
        {
            foreach (var (_, j) in _keys.Values) j.Dispose();
            _keys.Clear();
            throw;
        }
        var rpcTimeout = TimeSpan.FromMilliseconds(_o.L1TimeoutMs);
        _inbox = new InboxClient(L1Rpc.Connect(_o.L1Rpc, rpcTimeout), _o.Inbox, _o.Registry, string.IsNullOrEmpty(_o.Escrow) ? _o.Registry : _o.Escrow,
            new L1RpcPolicy(rpcTimeout, _o.L1RpcRetries));
        var senderHex = !string.IsNullOrEmpty(_o.L1SenderKeyEnv) ? Environment.GetEnvironmentVariable(_o.L1SenderKeyEnv) : keys[0].SecretHex();
        if (string.IsNullOrEmpty(senderHex)) throw new InvalidOperationException($"Proposer:L1SenderKeyEnv: {_o.L1SenderKeyEnv} is not set");
        // Version 2: the price rule and reserve are L1 market parameters; offers are checked against them.
        _rules = await _inbox.MarketRulesAsync(ct);
        _seedRecorder = new InboxClient(L1Rpc.Connect(_o.L1Rpc, rpcTimeout, new Nethereum.Web3.Accounts.Account(senderHex, _o.L1ChainId)),
            _o.Inbox, _o.Registry, string.IsNullOrEmpty(_o.Escrow) ? _o.Registry : _o.Escrow, new L1RpcPolicy(rpcTimeout, _o.L1RpcRetries));
        _poster = new L1Poster(_inbox, senderHex, new FilePosterJournal(Path.Combine(Path.GetFullPath(_o.DataDir), "l1-poster.json")),
            new L1PosterOptions { ReceiptTimeout = TimeSpan.FromMilliseconds(_o.L1ReceiptTimeoutMs), RpcTimeout = rpcTimeout, RpcRetries = _o.L1RpcRetries }, _loggers.CreateLogger("PbsMarket.Proposer.L1Poster"));
        foreach (var (k, j) in _keys.Values)
            _log.LogInformation("proposer key {Address} from {Origin}; journal {Journal} (highest signed slot {Highest})", k.Address, k.Origin, j.Path,
                j.HighestSlot?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none");
        foreach (var r in _relays) _log.LogInformation("relay {Relay} signing address {Address}", r.Name, r.Address);
        if (_relays.Count == 0) _log.LogWarning("no relays configured: every led slot gets the client's own block");
        _log.LogInformation("L1 posts of the client's own blocks are paid by {Sender}", _poster.Sender);
        _postWorker = Task.Run(() => PostWorkerAsync(_lifetime.Token));
        if (_o.MetricsPort is { } port) await StartMetricsAsync(port, ct);
        _started = true;
    }

    /// <summary>Runs until cancelled: one duty per slot led by one of the keys.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        if (!_started) await StartAsync(ct);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _lifetime.Token);
        ct = linked.Token;
        var slot = NextSlotToServe();
        while (!ct.IsCancellationRequested)
        {
            var epoch = slot / (ulong)_o.SlotsPerEpoch;
            _ = SetAsync(epoch + 1, ct); // fetch the next epoch's set ahead of time
            _ = RecordSeedAsync(slot);
            var leader = await LeaderAsync(slot, ct);
            try { await DelayUntilAsync(_clock.AuctionClosesMs(slot), ct); }
            catch (OperationCanceledException) { break; }
            if (leader is { } l && _keys.ContainsKey(l))
            {
                try { await RunSlotAsync(slot, ct); }
                catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
                catch (Exception e) { _log.LogError(e, "slot {Slot}: duty failed", slot); }
            }
            slot = Math.Max(slot + 1, NextSlotToServe());
        }
    }

    ulong NextSlotToServe()
    {
        var t = _clock.NowMs + _clock.CloseOffsetMs;
        return t < _clock.GenesisMs ? 0 : _clock.SlotAt(t) + 1;
    }

    async Task DelayUntilAsync(ulong ms, CancellationToken ct)
    {
        var wait = (long)ms - (long)_clock.NowMs;
        if (wait > 0) await Task.Delay(TimeSpan.FromMilliseconds(wait), _time, ct);
    }

    // ---- schedule ----

    Task<IReadOnlyList<Address>> SetAsync(ulong epoch, CancellationToken ct)
    {
        var task = _sets.GetOrAdd(epoch, e => _inbox.ProposerSetAtAsync(e, CancellationToken.None));
        // A failed fetch is forgotten so the next call retries; sets of epochs beyond current + 1 may still change.
        _ = task.ContinueWith(t =>
        {
            var current = _clock.CurrentSlot / (ulong)_o.SlotsPerEpoch;
            if (t.IsFaulted || t.IsCanceled || epoch > current + 1) _sets.TryRemove(new KeyValuePair<ulong, Task<IReadOnlyList<Address>>>(epoch, task));
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        foreach (var old in _sets.Keys.Where(k => k + 4 < epoch)) _sets.TryRemove(old, out _);
        return task.WaitAsync(ct);
    }

    /// <summary>The epoch's schedule seed from L1; kept once final (a seed may change until halfway through the epoch before).</summary>
    async Task<Hash32> SeedAsync(ulong epoch, CancellationToken ct)
    {
        if (_finalSeeds.TryGetValue(epoch, out var seed)) return seed;
        var final = await _inbox.SeedIsFinalAsync(epoch, ct);
        seed = await _inbox.SeedOfAsync(epoch, ct);
        if (final) _finalSeeds[epoch] = seed;
        foreach (var old in _finalSeeds.Keys.Where(k => k + 4 < epoch)) _finalSeeds.TryRemove(old, out _);
        return seed;
    }

    /// <summary>Records the next epoch's seed (recordSeed) in the first half of an epoch, as relays do: anyone may, once.</summary>
    async Task RecordSeedAsync(ulong slot)
    {
        if (ProposerSchedule.SeedRecordEpoch(slot, (ulong)_o.SlotsPerEpoch) is not { } epoch || _seedDoneFor == epoch || _seedRecorder is null) return;
        _seedDoneFor = epoch;
        try
        {
            var from = _seedRecorder.Web3.TransactionManager.Account.Address;
            if (await _seedRecorder.SimulateRecordSeedAsync(from, _lifetime.Token) is null)
            {
                var receipt = await _seedRecorder.RecordSeedAsync(_lifetime.Token);
                _log.LogInformation("recorded the schedule seed of epoch {Epoch} (tx {Tx})", epoch, receipt.TransactionHash);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _log.LogDebug("seed record for epoch {Epoch} not made: {Error}", epoch, e.Message);
        }
    }

    async Task<Address?> LeaderAsync(ulong slot, CancellationToken ct)
    {
        try
        {
            var epoch = slot / (ulong)_o.SlotsPerEpoch;
            var set = await SetAsync(epoch, ct);
            if (set.Count == 0) return null;
            var drawn = ProposerSchedule.ProposerFor(slot, await SeedAsync(epoch, ct), set);
            // A slashed proposer's slots are empty (L1 refuses its headers with NoProposerForSlot): one of our keys that was
            // slashed signs nothing more, and above all builds no block that later slots would take as their parent.
            if (_keys.ContainsKey(drawn) && (await _inbox.ProposerInfoAsync(drawn, ct)).Status == ProposerStatus.Slashed)
            {
                _log.LogWarning("slot {Slot}: drawn proposer {Proposer} is slashed on L1; the slot is empty and nothing is signed", slot, drawn);
                return null;
            }
            return drawn;
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            _log.LogWarning("slot {Slot}: proposer set unknown ({Error}); skipping the slot", slot, e.Message);
            return null;
        }
    }

    // ---- the head ----

    async Task<HeadRef> ReadL1HeadAsync(CancellationToken ct)
    {
        try
        {
            // One linear chain (version 2): the head is the last posted header, so its slot is the last posted slot.
            var tip = await _inbox.TipAsync(ct);
            if (tip.IsGenesis) return HeadRef.Genesis;
            return _l1Head = new HeadRef(tip.Hash, tip.Number, tip.Slot, "l1");
        }
        catch (Exception e) when (e is not OperationCanceledException || !_lifetime.IsCancellationRequested)
        {
            _log.LogDebug("L1 head not read ({Error}); using the last known one", e.Message);
            return _l1Head;
        }
    }

    /// <summary>The parent rule (docs/protocol.md, "Proposer client"): the highest-number header among the L1 inbox head, the
    /// headers this client signed whose payload it holds, and heads relays report, the last only when plausible.</summary>
    internal HeadRef ChooseHead(ulong slot, HeadRef l1, IEnumerable<ReportedHead> reports)
    {
        HeadRef verified = l1;
        lock (_ownHeads)
        {
            foreach (var own in _ownHeads.Values)
                if (own.Slot < slot && own.Number > verified.Number) verified = own;
        }
        // A relay can only know of blocks in the slots after the verified head's slot.
        var room = verified.Slot is { } vs ? (slot > vs ? slot - 1 - vs : 0) : slot;
        var best = reports
            .Where(r => r.AuctionSlot == slot && r.Number > verified.Number && r.Number - verified.Number <= room && !r.Hash.IsZero)
            .GroupBy(r => (r.Hash, r.Number))
            .OrderByDescending(g => g.Key.Number).ThenByDescending(g => g.Count()).ThenBy(g => g.Key.Hash)
            .FirstOrDefault();
        return best is null ? verified : new HeadRef(best.Key.Hash, best.Key.Number, null, "relay " + string.Join(",", best.Select(r => r.Relay.Name)));
    }

    void RememberOwnHead(Header h, Hash32 hash)
    {
        lock (_ownHeads)
        {
            _ownHeads[hash] = new HeadRef(hash, h.Number, h.Slot, "own");
            foreach (var old in _ownHeads.Where(kv => kv.Value.Slot + 256 < h.Slot).Select(kv => kv.Key).ToList()) _ownHeads.Remove(old);
        }
    }

    // ---- one slot ----

    /// <summary>The duty for one slot (normally called by <see cref="RunAsync"/> at the auction close).</summary>
    internal async Task<SlotReport> RunSlotAsync(ulong slot, CancellationToken ct)
    {
        var leader = await LeaderAsync(slot, ct) ?? throw new InvalidOperationException($"slot {slot} has no known proposer");
        if (!_keys.TryGetValue(leader, out var k)) throw new InvalidOperationException($"slot {slot} is led by {leader}, not one of this client's keys");
        var sw = new Elapsed(_time, _time.GetTimestamp());
        SlotReport report;
        try
        {
            report = await DutyAsync(slot, k.Key, k.Journal, sw, ct);
        }
        catch (SigningJournalException e)
        {
            _log.LogError("slot {Slot}: signing journal failure, nothing signed: {Error}", slot, e.Message);
            report = new SlotReport(slot, leader, SlotOutcome.Missed, "-", null, null, 0, 0, [], "journal failure: " + e.Message, sw.ElapsedMilliseconds);
        }
        Metrics.Record(report);
        _log.Log(report.Outcome == SlotOutcome.Missed ? LogLevel.Warning : LogLevel.Information, "{Report}", report.ToString());
        SlotCompleted?.Invoke(report);
        return report;
    }

    async Task<SlotReport> DutyAsync(ulong slot, LoadedKey key, SigningJournal journal, Elapsed sw, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(_o.HeaderTimeout);
        var requestSig = key.Key.Sign(Eip712.Digest(_domain, new HeaderRequest(slot, key.Address)));
        var retry = TimeSpan.FromMilliseconds(_o.TooEarlyRetryMs);
        var l1Task = ReadL1HeadAsync(deadline.Token);
        var offerTasks = _relays.Select(r => r.GetHeaderAsync(slot, requestSig, retry, deadline.Token)).ToList();
        var headTasks = _relays.Select(r => r.GetHeadAsync(slot, deadline.Token)).ToList();
        await Task.WhenAll([l1Task, .. offerTasks, .. headTasks]);
        ct.ThrowIfCancellationRequested();
        var head = ChooseHead(slot, l1Task.Result, headTasks.Select(t => t.Result).OfType<ReportedHead>());

        var refusals = new List<string>();
        var valid = new List<HeaderOffer>();
        var offers = new List<HeaderOffer>();
        foreach (var answer in offerTasks.Select(t => t.Result))
        {
            if (answer is NoHeader n) { refusals.Add($"{n.Relay}: {n.Reason}"); continue; }
            var offer = (HeaderOffer)answer;
            offers.Add(offer);
            if (CheckOffer(offer, slot, key.Address, head) is { } why) { refusals.Add($"{offer.Relay}: {why}"); Metrics.HeaderRefused(1); }
            else valid.Add(offer);
        }
        var ranked = valid.OrderByDescending(o => o.Header.Value).ThenBy(o => _relays.IndexOf(o.Relay)).ToList();

        // The journal decides first: a slot already decided may only get its recorded header again.
        if (journal.Get(slot) is { } decided)
        {
            // The same header from the same relay only: the same header with another relay's settlement is another Proposal (equivocation).
            var same = offers.FirstOrDefault(o => o.Header.Hash() == decided.HeaderHash && o.HeaderHash == decided.HeaderHash && decided.Source == "relay:" + o.Relay.Name);
            if (same is not null) return await DeliverRelayAsync(slot, key, journal, same, head, refusals, sw, "re-proposing the header journaled before a restart", ct);
            if (decided.Source == "fallback" && decided.Header.Builder == key.Address)
                return await DeliverFallbackAsync(slot, key, journal, decided.Header, refusals, sw, "re-announcing the journaled own block");
            Metrics.JournalRefused();
            return Missed(slot, key, refusals, sw, $"already signed {decided.HeaderHash} for this slot (journal); refusing any other header");
        }
        if (journal.HighestSlot is { } highest && slot <= highest)
        {
            Metrics.JournalRefused();
            return Missed(slot, key, refusals, sw, $"the journal already holds a later slot {highest}; refusing to sign slot {slot}");
        }
        if (ranked.Count > 0) return await DeliverRelayAsync(slot, key, journal, ranked[0], head, refusals, sw, "", ct);
        if (!_o.FallbackEnabled) return Missed(slot, key, refusals, sw, "no valid header and the fallback is disabled");
        var own = new Header(_o.L2ChainId, slot, head.Number + 1, head.Hash, _clock.StartMs(slot), (ulong)_o.MaxGasLimit, 0,
            Keccak.Hash(PayloadCodec.Empty), key.Address, key.Address, BigInteger.Zero);
        return await DeliverFallbackAsync(slot, key, journal, own, refusals, sw, $"parent {head.Hash} from {head.Source}");
    }

    string? CheckOffer(HeaderOffer o, ulong slot, Address me, HeadRef head)
    {
        var h = o.Header;
        var hash = h.Hash();
        if (hash != o.HeaderHash) return "header_hash is not the hash of the header";
        if (h.Slot != slot) return $"slot {h.Slot} is not {slot}";
        if (h.Proposer != me) return $"proposer {h.Proposer} is not {me}";
        if (h.L2ChainId != _o.L2ChainId) return $"l2_chain_id {h.L2ChainId} is not {_o.L2ChainId}";
        if (h.TimestampMs != _clock.StartMs(slot)) return $"timestamp_ms {h.TimestampMs} is not the slot start {_clock.StartMs(slot)}";
        // The head rules the relays apply (Core HeadRules): after the head's slot when it is known, on the head.
        var extends = head.Slot is { } headSlot && head.Number > 0
            ? HeadRules.CheckExtends(new ChainHead(head.Hash, head.Number, headSlot), h.Slot, h.Number, h.ParentHash)
            : HeadRules.CheckParent(head.Hash, head.Number, h.Number, h.ParentHash);
        if (extends is not null) return $"{extends.Message} (head from {head.Source})";
        if (h.GasLimit > (ulong)_o.MaxGasLimit) return $"gas_limit {h.GasLimit} exceeds the maximum {_o.MaxGasLimit}";
        if (h.GasUsed > h.GasLimit) return $"gas_used {h.GasUsed} exceeds gas_limit {h.GasLimit}";
        if (h.Builder.IsZero || !SignatureRecovery.Verify(Eip712.Digest(_domain, hash), o.BuilderSignature, h.Builder)) return $"builder_signature is not by {h.Builder}";
        if (SettlementRules.RelayOf(_domain, slot, hash, o.Settlement) != o.Relay.Address)
            return $"relay_signature is not by the relay's address {o.Relay.Address}";
        // The settlement must be the one L1 will accept (price rule, reserve, runner-up evidence): the same rules as the relay's.
        if (SettlementRules.Check(_domain, _rules.Rule, _rules.Reserve, h, o.Settlement, o.Relay.Address) is { } wrong) return $"{wrong.Code}: {wrong.Message}";
        return null;
    }

    async Task<SlotReport> DeliverRelayAsync(ulong slot, LoadedKey key, SigningJournal journal, HeaderOffer offer, HeadRef head, List<string> refusals,
        Elapsed sw, string note, CancellationToken ct)
    {
        var h = offer.Header;
        journal.Record(h, "relay:" + offer.Relay.Name, _time.GetUtcNow());
        if (_hooks.AfterJournalWrite is { } hook) await hook(slot, h);
        // Version 2: the signature commits to the header and the settlement this relay's auction produced.
        var proposal = SettlementRules.ProposalFor(slot, offer.HeaderHash, offer.Settlement, offer.Relay.Address);
        var proposalSig = key.Key.Sign(Eip712.Digest(_domain, proposal));
        using var payloadDeadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        payloadDeadline.CancelAfter(_o.PayloadTimeout);
        var (payload, reason) = await offer.Relay.ProposeAsync(ProposalSubmission.Of(proposal, proposalSig), TimeSpan.FromMilliseconds(_o.PayloadRetryMs), payloadDeadline.Token);
        string? bad = null;
        if (payload is null) bad = $"signed {offer.HeaderHash} but {offer.Relay} returned no payload ({reason}); the slot is missed unless the relay publishes it (a different header cannot be signed)";
        else if (Keccak.Hash(payload) != h.PayloadHash) bad = $"{offer.Relay} returned a payload whose keccak256 is not payload_hash";
        else if (PayloadCodec.Decode(payload, _o.L2ChainId) is { IsOk: false } decoded) bad = $"{offer.Relay} returned an undecodable payload: {decoded.Error}";
        if (bad is not null)
            return new SlotReport(slot, key.Address, SlotOutcome.Missed, offer.Relay.Name, h, offer.HeaderHash, h.Value, offer.Price, refusals, bad, sw.ElapsedMilliseconds);

        RememberOwnHead(h, offer.HeaderHash);
        Announce(new HeadAnnouncement(h, offer.BuilderSignature, proposalSig, payload!, offer.Settlement), except: offer.Relay);
        if (_o.PostRelayBlocks) _posts.Writer.TryWrite(new PostItem(h, offer.BuilderSignature, proposalSig, payload!, offer.Settlement));
        return new SlotReport(slot, key.Address, SlotOutcome.Proposed, offer.Relay.Name, h, offer.HeaderHash, h.Value, offer.Price, refusals,
            note.Length > 0 ? note : $"parent from {head.Source}", sw.ElapsedMilliseconds);
    }

    async Task<SlotReport> DeliverFallbackAsync(ulong slot, LoadedKey key, SigningJournal journal, Header own, List<string> refusals, Elapsed sw, string note)
    {
        var hash = own.Hash();
        journal.Record(own, "fallback", _time.GetUtcNow());
        if (_hooks.AfterJournalWrite is { } hook) await hook(slot, own);
        var builderSig = key.Key.Sign(Eip712.Digest(_domain, hash));
        var proposalSig = key.Key.Sign(Eip712.Digest(_domain, Proposal.Fallback(slot, hash)));
        RememberOwnHead(own, hash);
        Announce(new HeadAnnouncement(own, builderSig, proposalSig, PayloadCodec.Empty), except: null);
        _posts.Writer.TryWrite(new PostItem(own, builderSig, proposalSig, PayloadCodec.Empty, Settlement.None));
        return new SlotReport(slot, key.Address, SlotOutcome.Fallback, "fallback", own, hash, 0, 0, refusals, note, sw.ElapsedMilliseconds);
    }

    SlotReport Missed(ulong slot, LoadedKey key, List<string> refusals, Elapsed sw, string detail) =>
        new(slot, key.Address, SlotOutcome.Missed, "-", null, null, 0, 0, refusals, detail, sw.ElapsedMilliseconds);

    /// <summary>Tells every relay (but the one that auctioned it) about a signed header, in the background, with a timeout each.</summary>
    void Announce(HeadAnnouncement a, RelayClient? except)
    {
        foreach (var relay in _relays.Where(r => r != except))
        {
            var task = Task.Run(async () =>
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token);
                cts.CancelAfter(TimeSpan.FromMilliseconds(_o.AnnounceTimeoutMs));
                var (ok, adopted, detail) = await relay.AnnounceAsync(a, cts.Token);
                if (ok) _log.LogDebug("slot {Slot}: announced to {Relay} (adopted {Adopted}, {Detail})", a.Header.Slot, relay, adopted, detail);
                else _log.LogInformation("slot {Slot}: announcement to {Relay} failed: {Detail}", a.Header.Slot, relay, detail);
            });
            _background.TryAdd(task, 0);
            _ = task.ContinueWith(t => _background.TryRemove(t, out _), TaskScheduler.Default);
        }
    }

    // ---- L1 safety net ----

    async Task PostWorkerAsync(CancellationToken ct)
    {
        try
        {
            await foreach (var item in _posts.Reader.ReadAllAsync(ct))
            {
                await DelayUntilAsync(_clock.StartMs(item.Slot) + (ulong)_o.PostGrace.TotalMilliseconds, ct);
                for (var attempt = 0; attempt < 5 && !ct.IsCancellationRequested; attempt++)
                {
                    try
                    {
                        var held = await _inbox.HeaderOfSlotAsync(item.Slot, ct);
                        if (!held.IsZero)
                        {
                            if (held != item.Header.Hash()) _log.LogWarning("slot {Slot}: L1 holds {Held}, not the signed {Ours}", item.Slot, held, item.Header.Hash());
                            break;
                        }
                        var outcome = (await _poster!.PostAsync([item], ct)).Single();
                        if (outcome.Status == PostStatus.Posted) { Metrics.PostedByClient(); _log.LogInformation("slot {Slot}: posted to L1 by the client ({Outcome})", item.Slot, outcome); break; }
                        if (outcome.Status is PostStatus.AlreadyPosted) break;
                        if (outcome.Status is PostStatus.Rejected)
                        {
                            // A header L1 refuses can never be a parent: later slots must not build on it.
                            lock (_ownHeads) _ownHeads.Remove(item.Header.Hash());
                            _log.LogWarning("slot {Slot}: L1 refuses the header: {Outcome}; no later slot builds on it", item.Slot, outcome);
                            break;
                        }
                        _log.LogInformation("slot {Slot}: L1 post deferred: {Outcome}", item.Slot, outcome);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        _log.LogWarning("slot {Slot}: L1 post attempt failed: {Error}", item.Slot, e.Message);
                    }
                    await Task.Delay(_o.L1PostRetry, _time, ct);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }

    // ---- metrics endpoint ----

    async Task StartMetricsAsync(int port, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://{_o.MetricsHost}:{port}");
        builder.Logging.ClearProviders();
        // A meter of this endpoint's own (from its host's factory), exported alone: several clients may share a process.
        builder.Services.AddOpenTelemetry().WithMetrics(m => m
            .AddMeter(ProposerMetrics.MeterName)
            .AddPrometheusExporter(o => { o.ScrapeResponseCacheDurationMilliseconds = 0; o.ScopeInfoEnabled = false; o.TargetInfoEnabled = false; }));
        builder.Services.ConfigureOpenTelemetryMeterProvider((sp, b) =>
        {
            var own = sp.GetRequiredService<ProposerMeter>().Meter;
            b.AddView(i => ReferenceEquals(i.Meter, own) ? null : OpenTelemetry.Metrics.MetricStreamConfiguration.Drop);
        });
        builder.Services.AddSingleton(sp => new ProposerMeter(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), Metrics));
        var app = builder.Build();
        app.Services.GetRequiredService<ProposerMeter>();
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapGet("/livez", () => Results.Text("ok"));
        await app.StartAsync(ct);
        _metricsServer = app;
        MetricsUrl = app.Urls.First().TrimEnd('/') + "/metrics";
        _log.LogInformation("metrics on {Url}", MetricsUrl);
    }

    sealed class ProposerMeter
    {
        public ProposerMeter(System.Diagnostics.Metrics.IMeterFactory factory, ProposerMetrics metrics)
        {
            Meter = factory.Create(new System.Diagnostics.Metrics.MeterOptions(ProposerMetrics.MeterName));
            metrics.Publish(Meter);
        }

        public System.Diagnostics.Metrics.Meter Meter { get; }
    }

    public async ValueTask DisposeAsync()
    {
        if (_lifetime.IsCancellationRequested) return;
        await _lifetime.CancelAsync();
        _posts.Writer.TryComplete();
        try { await Task.WhenAll(_background.Keys).WaitAsync(TimeSpan.FromSeconds(5)); } catch (Exception e) when (e is not OutOfMemoryException) { }
        if (_postWorker is not null) { try { await _postWorker.WaitAsync(TimeSpan.FromSeconds(10)); } catch (Exception e) when (e is not OutOfMemoryException) { } }
        if (_poster is not null) await _poster.DisposeAsync();
        if (_metricsServer is not null) await _metricsServer.DisposeAsync();
        foreach (var (_, j) in _keys.Values) j.Dispose();
        foreach (var r in _relays) r.Dispose();
        _lifetime.Dispose();
    }
}
