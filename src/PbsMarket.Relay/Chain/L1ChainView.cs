using System.Collections.Concurrent;
using Nethereum.Web3;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Relay.Auctions;
using Polly;
using Polly.Retry;
using StackExchange.Redis;

namespace PbsMarket.Relay.Chain;

/// <summary>
/// The relay's view of L1, refreshed every half slot: the proposer sets and schedule seeds of the current and next
/// epochs, the bond and slashed status of their members, and each known builder's collateral at this relay (the
/// escrow allocates collateral per relay in protocol version 2) and whether it is barred. L1 errors are retried with backoff and
/// surface through <see cref="Problem"/> (readiness), never as wrong answers: a set we could not read
/// is unknown, not empty.
/// </summary>
public sealed class L1ChainView : BackgroundService, IChainView
{
    readonly Market _market;
    readonly ILogger<L1ChainView> _log;
    readonly Infrastructure.RedisRouting _routing;
    readonly Web3 _web3;
    readonly string _registry, _escrow;
    readonly ConcurrentDictionary<ulong, IReadOnlyList<Address>> _sets = new();
    readonly ConcurrentDictionary<ulong, Hash32> _seeds = new();
    readonly ConcurrentDictionary<Address, (BigInteger Bond, bool Slashed)> _standing = new();
    readonly ConcurrentDictionary<Address, Collateral> _collateral = new();
    readonly DebtLedger _ledger;

    /// <summary>A builder's escrow allocation at this relay and whether it is barred, as of L1 block <c>AtBlock</c>.</summary>
    readonly record struct Collateral(BigInteger Balance, bool Barred, long FetchedAt, ulong AtBlock);

    /// <summary>The L1 block of the last tip read (balances are read at it or later, never at a node's "latest").</summary>
    ulong _tipBlock;

    /// <summary>Builders that ever deposited collateral allocated to this relay (the escrow's Deposited events), scanned
    /// through block <c>_depositsScannedTo - 1</c>: any other key has nothing here, and costs no L1 read.</summary>
    readonly ConcurrentDictionary<Address, byte> _depositors = new();
    ulong _depositsScannedTo;
    /// <summary>On-demand reads for keys not (yet) seen depositing: a deposit newer than the last scan is still found at
    /// once, but a flood of fresh keys gets at most 10 L1 reads a second, and 2 at a time; the rest a refusal at once
    /// (a real depositor is found by the next scan, within half a slot).</summary>
    readonly SemaphoreSlim _unknownKeyReads;
    readonly System.Threading.RateLimiting.TokenBucketRateLimiter _unknownKeyBudget;
    readonly Infrastructure.RelayMetrics _metrics;
    readonly ulong DepositScanBlocks;
    readonly Address _relay;
    readonly ResiliencePipeline _retry;
    readonly InboxClient _inbox;
    long _lastSuccess;

    readonly TimeProvider _time;

    readonly Infrastructure.EventHub _events;

    /// <summary>Monotonic milliseconds (for ages of cached reads; not wall time).</summary>
    long NowMs => (long)(_time.GetTimestamp() * (1000.0 / _time.TimestampFrequency));

    public L1ChainView(Market market, Infrastructure.RelayKey key, DebtLedger ledger, Infrastructure.RelayMetrics metrics, TimeProvider time, Infrastructure.EventHub events, Infrastructure.RedisRouting routing, ILogger<L1ChainView> log)
    {
        _routing = routing;
        _events = events;
        _time = time;
        _metrics = metrics;
        _ledger = ledger;
        _relay = key.Address;
        _market = market;
        _log = log;
        var o = market.Options;
        if (string.IsNullOrEmpty(o.Registry) || string.IsNullOrEmpty(o.Escrow))
            throw new InvalidOperationException("Relay:Registry and Relay:Escrow (contract addresses) are required; `pbs deploy` writes them");
        _registry = o.Registry;
        _escrow = o.Escrow;
        _depositsScannedTo = (ulong)o.DeployedAtBlock;
        DepositScanBlocks = (ulong)o.DepositScanBlocks;
        _unknownKeyReads = new(o.UnknownKeyConcurrentReads);
        _unknownKeyBudget = new(new()
        {
            TokenLimit = o.UnknownKeyReadsPerSecond, TokensPerPeriod = o.UnknownKeyReadsPerSecond, ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0, AutoReplenishment = true,
        });
        var rpcTimeout = TimeSpan.FromMilliseconds(o.L1RpcTimeoutMs);
        _web3 = L1Rpc.Connect(o.L1Rpc, rpcTimeout);
        _inbox = new InboxClient(_web3, o.Inbox, o.Registry, o.Escrow, new L1RpcPolicy(rpcTimeout, 1));
        var retry = new ResiliencePipelineBuilder();
        if (o.L1ReadRetries > 0)
            retry.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = o.L1ReadRetries,
                Delay = TimeSpan.FromMilliseconds(o.L1ReadRetryDelayMs),
                BackoffType = DelayBackoffType.Exponential,
                ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not OperationCanceledException),
            });
        _retry = retry.AddTimeout(TimeSpan.FromMilliseconds(o.L1ReadTimeoutMs)).Build();
    }

    public string? Problem { get; private set; } = "L1 not synced yet";

    /// <summary>Whether the inbox accepts this relay's signing key (registered, active, bonded), as of the last refresh; null before the first.</summary>
    public bool? RelayRegistered { get; private set; }

    /// <summary>The relay's signing address.</summary>
    public Address RelayAddress => _relay;

    public ChainHead? InboxHead { get; private set; }

    public IReadOnlyList<Address>? ProposerSet(ulong epoch) => _sets.TryGetValue(epoch, out var set) ? set : null;

    public Hash32? Seed(ulong epoch) => _seeds.TryGetValue(epoch, out var seed) ? seed : null;

    public (BigInteger Bond, bool Slashed)? ProposerStanding(Address proposer) => _standing.TryGetValue(proposer, out var s) ? s : null;

    /// <summary>How long a balance read on demand serves without the refresh loop: one slot (the loop re-reads every half slot).</summary>
    long CacheMs => Math.Max(1000, _market.Options.SlotMs);

    public async ValueTask<(BigInteger Collateral, bool Barred)> CollateralAsync(Address builder, ulong atLeastBlock, CancellationToken ct)
    {
        var now = NowMs;
        // Stale when older than the cache, or read at a block before the one by which the ledger released debts: L1
        // may have charged those since, and free collateral would count the money twice.
        if (_collateral.TryGetValue(builder, out var c) && now - c.FetchedAt < CacheMs && c.AtBlock >= atLeastBlock) return (c.Balance, c.Barred);
        if (!_depositors.ContainsKey(builder))
        {
            // No deposit at this relay on record: nothing to read, unless it deposited since the last scan. That is
            // checked on L1 only while few such reads are running, and only a key found funded is remembered.
            using var lease = _unknownKeyBudget.AttemptAcquire();
            if (!lease.IsAcquired || !_unknownKeyReads.Wait(0)) return (BigInteger.Zero, false);
            try
            {
                _metrics.L1BalanceReads.Add(1, Infrastructure.RelayMetrics.Tag("key", "unknown"));
                var block = await OnDemandBlockAsync(atLeastBlock, ct);
                var (fresh, freshBarred) = await ReadBalanceAsync(builder, block, ct);
                if (fresh.IsZero && !freshBarred) return (fresh, freshBarred);
                _depositors.TryAdd(builder, 0);
                _collateral[builder] = new(fresh, freshBarred, now, block);
                return (fresh, freshBarred);
            }
            finally
            {
                _unknownKeyReads.Release();
            }
        }
        _metrics.L1BalanceReads.Add(1, Infrastructure.RelayMetrics.Tag("key", "depositor"));
        var at = await OnDemandBlockAsync(atLeastBlock, ct);
        var (balance, barred) = await ReadBalanceAsync(builder, at, ct);
        _collateral[builder] = new(balance, barred, now, at);
        return (balance, barred);
    }

    /// <summary>
    /// The block an on-demand balance read uses: the node's current one (a deposit made a moment ago counts), and never
    /// one before <paramref name="atLeastBlock"/>. An explicit block, not "latest", so that the read and its label agree
    /// and a lagging or load-balanced endpoint cannot answer from before the block the ledger relies on.
    /// </summary>
    async Task<ulong> OnDemandBlockAsync(ulong atLeastBlock, CancellationToken ct)
    {
        var current = await _retry.ExecuteAsync(async _ => (ulong)(await _web3.Eth.Blocks.GetBlockNumber.SendRequestAsync()).Value, ct);
        return Math.Max(Math.Max(current, Volatile.Read(ref _tipBlock)), atLeastBlock);
    }

    /// <summary>Adds the builders that deposited at this relay up to <paramref name="toBlock"/>, in bounded log queries.</summary>
    async Task ScanDepositsAsync(ulong toBlock, CancellationToken ct)
    {
        while (_depositsScannedTo <= toBlock)
        {
            var to = Math.Min(toBlock, _depositsScannedTo + DepositScanBlocks - 1);
            var from = _depositsScannedTo;
            foreach (var b in await _retry.ExecuteAsync(async t => await _inbox.GetDepositorsAsync(_relay, from, to, t), ct)) _depositors.TryAdd(b, 0);
            _depositsScannedTo = to + 1;
            if (toBlock - to > DepositScanBlocks) _log.LogInformation("scanning escrow deposits: block {Block} of {Tip}, {Count} depositors so far", to, toBlock, _depositors.Count);
        }
    }

    async Task<(BigInteger, bool)> ReadBalanceAsync(Address builder, ulong block, CancellationToken ct) =>
        await _retry.ExecuteAsync(async _ =>
        {
            var at = new Nethereum.RPC.Eth.DTOs.BlockParameter(block);
            var balance = await _web3.Eth.GetContractQueryHandler<EscrowBalanceOfFunction>()
                .QueryAsync<BigInteger>(_escrow, new EscrowBalanceOfFunction { Builder = builder.ToString(), Relay = _relay.ToString() }, at);
            var barred = await _web3.Eth.GetContractQueryHandler<IsBarredFunction>()
                .QueryAsync<bool>(_escrow, new IsBarredFunction { Builder = builder.ToString() }, at);
            return (balance, barred);
        }, ct);

    async Task<bool> ReadSeedIsFinalAsync(ulong epoch, CancellationToken ct) =>
        await _retry.ExecuteAsync(async _ => await _web3.Eth.GetContractQueryHandler<SeedIsFinalFunction>()
            .QueryAsync<bool>(_registry, new SeedIsFinalFunction { Epoch = epoch }), ct);

    async Task<Hash32> ReadSeedAsync(ulong epoch, CancellationToken ct) =>
        await _retry.ExecuteAsync(async _ => Hash32.FromBytes(await _web3.Eth.GetContractQueryHandler<SeedOfFunction>()
            .QueryAsync<byte[]>(_registry, new SeedOfFunction { Epoch = epoch })), ct);

    async Task<(BigInteger, bool)> ReadStandingAsync(Address proposer, CancellationToken ct) =>
        await _retry.ExecuteAsync(async _ =>
        {
            var info = await _web3.Eth.GetContractQueryHandler<ProposerInfoFunction>()
                .QueryDeserializingToObjectAsync<ProposerInfoOutput>(new ProposerInfoFunction { Proposer = proposer.ToString() }, _registry);
            return (info.Bond, info.Status == (byte)ProposerStatus.Slashed);
        }, ct);

    async Task<IReadOnlyList<Address>> ReadSetAsync(ulong epoch, CancellationToken ct) =>
        await _retry.ExecuteAsync(async _ =>
        {
            var list = await _web3.Eth.GetContractQueryHandler<ProposerSetAtFunction>()
                .QueryAsync<List<string>>(_registry, new ProposerSetAtFunction { Epoch = epoch });
            return (IReadOnlyList<Address>)list.Select(Address.Parse).ToList();
        }, ct);

    /// <summary>One refresh; also used at start-up so the first auction can open at once.</summary>
    string? _rulesProblem;
    bool _rulesChecked;

    /// <summary>
    /// The relay prices auctions; L1 judges them (v2): a relay whose price rule or reserve differs from the inbox's is not
    /// ready. Nor is one whose escrow lets collateral go sooner than a won bid settles: a balance read up to one slot
    /// ago backs a bid whose header may reach L1 only after its late window and two posting rounds.
    /// </summary>
    async Task CheckMarketRulesAsync(CancellationToken ct)
    {
        if (_rulesChecked) return;
        var inbox = new InboxClient(_web3, _market.Options.Inbox, _registry, _escrow);
        var (rule, reserve) = await inbox.MarketRulesAsync(ct);
        var delayS = await inbox.WithdrawalDelayAsync(ct);
        var horizonS = (CacheMs + (long)(HeadRules.LateSlots + 2) * _market.Options.SlotMs) / 1000 + 2 * (long)_market.Options.L1PosterRoundTimeoutMs / 1000;
        _rulesProblem = rule != _market.PriceRule || reserve != _market.Reserve
            ? $"Relay:PriceRule {_market.PriceRule} / Relay:ReservePrice {_market.Reserve} differ from the inbox's {rule} / {reserve}: L1 would refuse this relay's prices"
            : (long)delayS < horizonS
                ? $"the escrow's withdrawal delay ({delayS} s) is shorter than this relay's settlement horizon ({horizonS} s): a builder could withdraw the collateral behind a won bid before L1 charges it"
                : null;
        if (_rulesProblem is not null) _log.LogError("{Problem}", _rulesProblem);
        _rulesChecked = true;
    }

    public async Task RefreshAsync(CancellationToken ct)
    {
        await CheckMarketRulesAsync(ct);
        // The inbox's head first: no auction opens (no proposer set is known) before the relay knows what L1 holds.
        // Version 2 keeps no per-slot storage: the head's slot is the inbox's last posted slot.
        var tip = await _retry.ExecuteAsync(async t => await _inbox.TipAsync(t), ct);
        InboxHead = tip.IsGenesis ? ChainHead.Genesis : new ChainHead(tip.Hash, tip.Number, tip.Slot);
        if (tip.L1Block > Volatile.Read(ref _tipBlock)) Volatile.Write(ref _tipBlock, tip.L1Block);
        RelayRegistered = await _inbox.IsRelayAsync(_relay, ct);
        await ScanDepositsAsync(tip.L1Block, ct);
        // Every slot up to the inbox's last posted one is final (one linear chain): its winner's debt goes, once. A
        // ledger that fails (Redis down, or state it cannot account for) must not stop the rest of the L1 view.
        if (!tip.IsGenesis)
        {
            try
            {
                await _ledger.ReleaseThroughAsync(tip.Slot, tip.L1Block);
            }
            catch (RedisException e)
            {
                _routing.Observe(e);
                _log.LogError("debt ledger: releasing debts through slot {Slot} failed: {Error}", tip.Slot, e.Message);
            }
        }
        var epoch = _market.EpochOf(_market.Clock.CurrentSlot);
        foreach (var e in new[] { epoch, epoch + 1 })
        {
            // A set two epochs ahead can still change; the current and next one are fixed on L1.
            _sets[e] = await ReadSetAsync(e, ct);
            // The seed of e + 1 is final halfway through e. Until L1 says so it is not used: an auction opened on a seed
            // that may still change could be for the wrong proposer, and after an L1 outage the relay cannot know.
            if (_seeds.ContainsKey(e)) continue;
            if (await ReadSeedIsFinalAsync(e, ct)) _seeds[e] = await ReadSeedAsync(e, ct);
        }
        foreach (var old in _sets.Keys.Where(k => k + 2 < epoch)) { _sets.TryRemove(old, out _); _seeds.TryRemove(old, out _); }
        // A slashed proposer's slots are empty at once: its status is read every refresh.
        foreach (var proposer in _sets.Values.SelectMany(x => x).Distinct())
        {
            (BigInteger Bond, bool Slashed) standing = await ReadStandingAsync(proposer, ct);
            var wasSlashed = _standing.TryGetValue(proposer, out var before) && before.Slashed;
            _standing[proposer] = standing;
            if (standing.Slashed && !wasSlashed)
            {
                // From here on this relay neither serves nor takes bids for the proposer's auctions, open ones included.
                _log.LogWarning("proposer {Proposer} is slashed on L1: its slots stay empty", proposer);
                await _events.PublishAsync(System.Text.Json.JsonSerializer.Serialize(new { type = "proposer_slashed", proposer = proposer.ToString() }));
            }
        }
        // Balances are read after the tip, so they include every settlement through its slot. Keys without the minimum
        // collateral are not refreshed but forgotten after the cache time: fresh keys cannot make this loop grow.
        foreach (var (builder, c) in _collateral)
        {
            if (c.Balance < _market.Options.MinFreeCollateralWei && !c.Barred)
            {
                if (NowMs - c.FetchedAt >= CacheMs) _collateral.TryRemove(builder, out _);
                continue;
            }
            var (balance, barred) = await ReadBalanceAsync(builder, tip.L1Block, ct);
            _collateral[builder] = new(balance, barred, NowMs, tip.L1Block);
        }
        _lastSuccess = NowMs;
    }

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await RefreshAsync(ct);
                if (Problem is not null) _log.LogInformation("L1 view synced: epoch {Epoch} has {Count} proposers", _market.EpochOf(_market.Clock.CurrentSlot), ProposerSet(_market.EpochOf(_market.Clock.CurrentSlot))?.Count ?? 0);
                Problem = _rulesProblem;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                var stale = NowMs - _lastSuccess > _market.Options.SlotMs * 3;
                if (stale || _lastSuccess == 0)
                {
                    if (Problem is null) _log.LogWarning("L1 unreachable: {Error}", e.Message);
                    Problem = $"L1 unreachable: {e.Message}";
                }
            }
            try
            {
                await Task.Delay(_market.Options.L1Refresh, _time, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
