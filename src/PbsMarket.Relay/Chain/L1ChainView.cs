using System.Collections.Concurrent;
using Nethereum.Web3;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Relay.Auctions;
using Polly;
using Polly.Retry;

namespace PbsMarket.Relay.Chain;

/// <summary>
/// The relay's view of L1, refreshed every slot: the proposer sets of the current and next epochs
/// from the registry, and each known builder's escrow balance. L1 errors are retried with backoff and
/// surface through <see cref="Problem"/> (readiness), never as wrong answers: a set we could not read
/// is unknown, not empty.
/// </summary>
public sealed class L1ChainView : BackgroundService, IChainView
{
    readonly Market _market;
    readonly ILogger<L1ChainView> _log;
    readonly Web3 _web3;
    readonly string _registry, _escrow;
    readonly ConcurrentDictionary<ulong, IReadOnlyList<Address>> _sets = new();
    readonly ConcurrentDictionary<Address, (BigInteger Balance, long FetchedAt)> _collateral = new();
    readonly ResiliencePipeline _retry;
    readonly InboxClient _inbox;
    long _lastSuccess;

    public L1ChainView(Market market, ILogger<L1ChainView> log)
    {
        _market = market;
        _log = log;
        var o = market.Options;
        if (string.IsNullOrEmpty(o.Registry) || string.IsNullOrEmpty(o.Escrow))
            throw new InvalidOperationException("Relay:Registry and Relay:Escrow (contract addresses) are required; `pbs deploy` writes them");
        _registry = o.Registry;
        _escrow = o.Escrow;
        _web3 = L1Rpc.Connect(o.L1Rpc, TimeSpan.FromSeconds(3));
        _inbox = new InboxClient(_web3, o.Inbox, o.Registry, o.Escrow, new L1RpcPolicy(TimeSpan.FromSeconds(3), 1));
        _retry = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = 2,
                Delay = TimeSpan.FromMilliseconds(100),
                BackoffType = DelayBackoffType.Exponential,
                ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not OperationCanceledException),
            })
            .AddTimeout(TimeSpan.FromSeconds(8))
            .Build();
    }

    public string? Problem { get; private set; } = "L1 not synced yet";

    public ChainHead? InboxHead { get; private set; }

    public IReadOnlyList<Address>? ProposerSet(ulong epoch) => _sets.TryGetValue(epoch, out var set) ? set : null;

    public async ValueTask<BigInteger> CollateralAsync(Address builder, CancellationToken ct)
    {
        var now = Environment.TickCount64;
        if (_collateral.TryGetValue(builder, out var c) && now - c.FetchedAt < _market.Options.SlotMs * 3) return c.Balance;
        var balance = await ReadBalanceAsync(builder, ct);
        _collateral[builder] = (balance, now);
        return balance;
    }

    async Task<BigInteger> ReadBalanceAsync(Address builder, CancellationToken ct) =>
        await _retry.ExecuteAsync(async _ => await _web3.Eth.GetContractQueryHandler<EscrowBalanceOfFunction>()
            .QueryAsync<BigInteger>(_escrow, new EscrowBalanceOfFunction { Builder = builder.ToString() }), ct);

    async Task<IReadOnlyList<Address>> ReadSetAsync(ulong epoch, CancellationToken ct) =>
        await _retry.ExecuteAsync(async _ =>
        {
            var list = await _web3.Eth.GetContractQueryHandler<ProposerSetAtFunction>()
                .QueryAsync<List<string>>(_registry, new ProposerSetAtFunction { Epoch = epoch });
            return (IReadOnlyList<Address>)list.Select(Address.Parse).ToList();
        }, ct);

    /// <summary>One refresh; also used at start-up so the first auction can open at once.</summary>
    public async Task RefreshAsync(CancellationToken ct)
    {
        // The inbox's head first: no auction opens (no proposer set is known) before the relay knows what L1 holds.
        var (hash, number) = await _retry.ExecuteAsync(async t => await _inbox.HeadAsync(t), ct);
        if (hash.IsZero) InboxHead = ChainHead.Genesis;
        else if (InboxHead?.Hash != hash)
        {
            var info = await _retry.ExecuteAsync(async t => await _inbox.HeaderInfoAsync(hash, t), ct);
            InboxHead = new ChainHead(hash, number, info.Slot);
        }
        var epoch = _market.EpochOf(_market.Clock.CurrentSlot);
        foreach (var e in new[] { epoch, epoch + 1 })
        {
            // A set two epochs ahead can still change; the current and next one are fixed on L1.
            _sets[e] = await ReadSetAsync(e, ct);
        }
        foreach (var old in _sets.Keys.Where(k => k + 2 < epoch)) _sets.TryRemove(old, out _);
        foreach (var builder in _collateral.Keys)
            _collateral[builder] = (await ReadBalanceAsync(builder, ct), Environment.TickCount64);
        _lastSuccess = Environment.TickCount64;
    }

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await RefreshAsync(ct);
                if (Problem is not null) _log.LogInformation("L1 view synced: epoch {Epoch} has {Count} proposers", _market.EpochOf(_market.Clock.CurrentSlot), ProposerSet(_market.EpochOf(_market.Clock.CurrentSlot))?.Count ?? 0);
                Problem = null;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                var stale = Environment.TickCount64 - _lastSuccess > _market.Options.SlotMs * 3;
                if (stale || _lastSuccess == 0)
                {
                    if (Problem is null) _log.LogWarning("L1 unreachable: {Error}", e.Message);
                    Problem = $"L1 unreachable: {e.Message}";
                }
            }
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Max(500, _market.Options.SlotMs / 2)), ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
