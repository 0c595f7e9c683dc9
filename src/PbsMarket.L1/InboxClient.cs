using Nethereum.ABI.FunctionEncoding.Attributes;
using Nethereum.Contracts;
using Nethereum.Hex.HexConvertors.Extensions;
using Nethereum.Hex.HexTypes;
using Nethereum.JsonRpc.Client;
using Nethereum.RPC.Eth.DTOs;
using Nethereum.Web3;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using PbsMarket.Core;

namespace PbsMarket.L1;

/// <summary>Every RPC call gets a timeout; transport failures (not node answers) are retried.</summary>
public sealed class L1RpcPolicy
{
    public static readonly L1RpcPolicy Default = new(TimeSpan.FromSeconds(5), 3);

    readonly ResiliencePipeline _pipeline;

    public L1RpcPolicy(TimeSpan callTimeout, int retries)
    {
        CallTimeout = callTimeout;
        var builder = new ResiliencePipelineBuilder();
        if (retries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = retries,
                Delay = TimeSpan.FromMilliseconds(200),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransient),
            });
        }
        _pipeline = builder.AddTimeout(callTimeout).Build();
    }

    public TimeSpan CallTimeout { get; }

    /// <summary>Transport-level failures worth retrying (the node did not answer, or answered garbage).</summary>
    public static bool IsTransient(Exception e) => e is HttpRequestException or TimeoutRejectedException or RpcClientTimeoutException
        or RpcClientUnknownException or IOException or TaskCanceledException { CancellationToken.IsCancellationRequested: false };

    public async Task<T> RunAsync<T>(Func<Task<T>> call, CancellationToken ct) =>
        await _pipeline.ExecuteAsync(async token => await call().WaitAsync(token), ct);
}

/// <summary>The L1 inbox's head (hash, number, the slot it was posted for) as of L1 block <paramref name="L1Block"/>.</summary>
public readonly record struct InboxTip(Hash32 Hash, ulong Number, ulong Slot, ulong L1Block)
{
    public bool IsGenesis => Hash.IsZero;
}

/// <summary>Typed access to the market's L1 contracts: the inbox's views, posting simulation, equivocation
/// reports, events, and registry / escrow helpers.</summary>
public sealed class InboxClient
{
    public InboxClient(IWeb3 web3, string inbox, string registry, string escrow, L1RpcPolicy? policy = null)
    {
        Web3 = web3;
        Inbox = inbox.ToLowerInvariant();
        Registry = registry.ToLowerInvariant();
        Escrow = escrow.ToLowerInvariant();
        Policy = policy ?? L1RpcPolicy.Default;
    }

    public InboxClient(IWeb3 web3, DeployedMarket market, L1RpcPolicy? policy = null)
        : this(web3, market.Inbox, market.Registry, market.Escrow, policy) => FromBlock = market.DeployedAtBlock;

    /// <summary>First block searched for the inbox's events (the deployment block when known).</summary>
    public ulong FromBlock { get; init; }

    public IWeb3 Web3 { get; }
    public string Inbox { get; }
    public string Registry { get; }
    public string Escrow { get; }
    public L1RpcPolicy Policy { get; }

    Task<TOut> QueryAsync<TFn, TOut>(string contract, TFn fn, CancellationToken ct) where TFn : FunctionMessage, new() =>
        Policy.RunAsync(() => Web3.Eth.GetContractQueryHandler<TFn>().QueryAsync<TOut>(contract, fn), ct);

    Task<TOut> QueryDtoAsync<TFn, TOut>(string contract, TFn fn, CancellationToken ct) where TFn : FunctionMessage, new() where TOut : IFunctionOutputDTO, new() =>
        Policy.RunAsync(() => Web3.Eth.GetContractQueryHandler<TFn>().QueryDeserializingToObjectAsync<TOut>(fn, contract), ct);

    // ---- inbox views ----

    /// <summary>
    /// The header posted for a slot, or <see cref="Hash32.Zero"/>. Version 2 keeps no per-slot storage: the answer
    /// comes from the slot's HeaderPosted event (the slot is an indexed topic).
    /// </summary>
    public async Task<Hash32> HeaderOfSlotAsync(ulong slot, CancellationToken ct = default) =>
        (await HeaderPostedOfSlotAsync(slot, ct))?.HeaderHash ?? Hash32.Zero;

    /// <summary>The HeaderPosted log of a slot, or null when none.</summary>
    public async Task<HeaderPostedLog?> HeaderPostedOfSlotAsync(ulong slot, CancellationToken ct = default)
    {
        var ev = Web3.Eth.GetEvent<HeaderPostedEvent>(Inbox);
        var filter = ev.CreateFilterInput(slot, new BlockParameter(FromBlock), BlockParameter.CreateLatest());
        var logs = await Policy.RunAsync(() => ev.GetAllChangesAsync(filter), ct);
        return logs.Count == 0 ? null : ToLog(logs[0]);
    }

    public async Task<Hash32> BidsRootOfSlotAsync(ulong slot, CancellationToken ct = default) =>
        (await HeaderPostedOfSlotAsync(slot, ct))?.BidsRoot ?? Hash32.Zero;

    public async Task<(Hash32 HeaderHash, ulong Number)> HeadAsync(CancellationToken ct = default)
    {
        var o = await QueryDtoAsync<HeadFunction, HeadOutput>(Inbox, new HeadFunction(), ct);
        return (Hash32.FromBytes(o.HeaderHash), o.Number);
    }

    /// <summary>
    /// The inbox's head with its slot, both read at one L1 block: two reads at "latest" could straddle a post and pair one
    /// header's hash with another's slot. Nothing posted yet: <see cref="InboxTip.IsGenesis"/>.
    /// </summary>
    public async Task<InboxTip> TipAsync(CancellationToken ct = default)
    {
        var block = await Policy.RunAsync(() => Web3.Eth.Blocks.GetBlockNumber.SendRequestAsync(), ct);
        var at = new BlockParameter(block);
        var head = await Policy.RunAsync(() => Web3.Eth.GetContractQueryHandler<HeadFunction>().QueryDeserializingToObjectAsync<HeadOutput>(new HeadFunction(), Inbox, at), ct);
        var slot = await Policy.RunAsync(() => Web3.Eth.GetContractQueryHandler<LastPostedSlotFunction>().QueryAsync<ulong>(Inbox, new LastPostedSlotFunction(), at), ct);
        return new InboxTip(Hash32.FromBytes(head.HeaderHash), head.Number, slot, (ulong)block.Value);
    }

    /// <summary>How long the escrow holds collateral requested for withdrawal (still seizable by settlements), in seconds.</summary>
    public Task<ulong> WithdrawalDelayAsync(CancellationToken ct = default) => QueryAsync<WithdrawalDelayFunction, ulong>(Escrow, new(), ct);

    /// <summary>0 when nothing is posted (check <see cref="HeaderCountAsync"/>).</summary>
    public Task<ulong> LastPostedSlotAsync(CancellationToken ct = default) => QueryAsync<LastPostedSlotFunction, ulong>(Inbox, new(), ct);
    public Task<ulong> HeaderCountAsync(CancellationToken ct = default) => QueryAsync<HeaderCountFunction, ulong>(Inbox, new(), ct);
    public Task<ulong> CurrentSlotAsync(CancellationToken ct = default) => QueryAsync<CurrentSlotFunction, ulong>(Inbox, new(), ct);

    public async Task<Hash32> DomainSeparatorAsync(CancellationToken ct = default) =>
        Hash32.FromBytes(await QueryAsync<DomainSeparatorFunction, byte[]>(Inbox, new(), ct));

    public async Task<Hash32> HashHeaderAsync(Header h, CancellationToken ct = default) =>
        Hash32.FromBytes(await QueryAsync<HashHeaderFunction, byte[]>(Inbox, new HashHeaderFunction { H = HeaderDto.From(h) }, ct));

    public async Task<Hash32> HeaderDigestAsync(Header h, CancellationToken ct = default) =>
        Hash32.FromBytes(await QueryAsync<HeaderDigestFunction, byte[]>(Inbox, new HeaderDigestFunction { H = HeaderDto.From(h) }, ct));

    public async Task<Hash32> ProposalDigestAsync(Proposal p, CancellationToken ct = default) =>
        Hash32.FromBytes(await QueryAsync<ProposalDigestFunction, byte[]>(Inbox, new ProposalDigestFunction { P = ProposalDto.From(p) }, ct));

    /// <summary>The inbox's market parameters: the price rule and the reserve price.</summary>
    public async Task<(PriceRule Rule, BigInteger Reserve)> MarketRulesAsync(CancellationToken ct = default)
    {
        var rule = await QueryAsync<PriceRuleFunction, byte>(Inbox, new(), ct);
        var reserve = await QueryAsync<ReservePriceFunction, BigInteger>(Inbox, new(), ct);
        return (rule == 0 ? PriceRule.FirstPrice : PriceRule.SecondPrice, reserve);
    }

    /// <summary>True when the inbox accepts this relay's AuctionResults (registered, active, bonded).</summary>
    public Task<bool> IsRelayAsync(Address relay, CancellationToken ct = default) =>
        QueryAsync<IsRelayFunction, bool>(Inbox, new IsRelayFunction { Relay = relay.ToString() }, ct);

    /// <summary>Registers the Web3's account as a relay with <paramref name="bond"/> wei.</summary>
    public Task<TransactionReceipt> RegisterRelayAsync(BigInteger bond, CancellationToken ct = default) =>
        SendCheckedAsync(Inbox, new RegisterRelayFunction { AmountToSend = bond }, "registerRelay", ct);

    /// <summary>The contract's ECDSA recovery (zero address for an invalid signature).</summary>
    public async Task<Address> RecoverSignerAsync(Hash32 digest, Signature sig, CancellationToken ct = default) =>
        Address.Parse(await QueryAsync<RecoverSignerFunction, string>(Inbox, new RecoverSignerFunction { Digest = digest.ToArray(), Signature = sig.ToArray() }, ct));

    // ---- posting ----

    /// <summary>ABI calldata of <c>postHeaders(items)</c>.</summary>
    public static string EncodePostHeaders(IEnumerable<PostItem> items) => PostHeadersFunction.From(items).GetCallData().ToHex(true);

    /// <summary>Simulates <c>postHeaders(items)</c> with eth_call: null if it would succeed, else the decoded error
    /// (e.g. <c>SlotAlreadyPosted(12)</c>). Transport failures throw.</summary>
    public Task<ContractError?> SimulateAsync(IReadOnlyList<PostItem> items, string? from = null, CancellationToken ct = default) =>
        SimulateCallAsync(Inbox, EncodePostHeaders(items), from, null, ct);

    /// <summary>eth_call of raw calldata: null on success, else the decoded revert.</summary>
    public async Task<ContractError?> SimulateCallAsync(string to, string data, string? from = null, BigInteger? value = null, CancellationToken ct = default)
    {
        var call = new CallInput { To = to, Data = data, From = from };
        if (value is { } v) call.Value = new HexBigInteger(v);
        try
        {
            await Policy.RunAsync(() => Web3.Client.SendRequestAsync<string>(new RpcRequest(1, "eth_call", call, "latest")), ct);
            return null;
        }
        catch (RpcResponseException e)
        {
            var data2 = e.RpcError?.GetDataAsString();
            if (string.IsNullOrEmpty(data2) || !data2.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            {
                // A revert without data (or a node that puts it elsewhere): still a refusal of the call.
                if (e.RpcError?.Message?.Contains("revert", StringComparison.OrdinalIgnoreCase) == true) return ContractErrors.Decode("0x");
                throw;
            }
            return ContractErrors.Decode(data2);
        }
    }

    /// <summary>Reports two differing Proposal (v2) signatures of one slot (sent from the Web3's account). Throws
    /// <see cref="ContractRevertException"/> with the decoded error if the contract refuses it.</summary>
    public async Task<TransactionReceipt> ReportEquivocationAsync(Proposal a, Signature sigA, Proposal b, Signature sigB, CancellationToken ct = default)
    {
        var fn = new ReportEquivocationFunction { A = ProposalDto.From(a), SigA = sigA.ToArray(), B = ProposalDto.From(b), SigB = sigB.ToArray() };
        return await SendCheckedAsync(Inbox, fn, "reportEquivocation", ct);
    }

    async Task<TransactionReceipt> SendCheckedAsync<TFn>(string contract, TFn fn, string what, CancellationToken ct) where TFn : FunctionMessage, new()
    {
        var from = Web3.TransactionManager?.Account?.Address ?? throw new InvalidOperationException("the Web3 has no account to send from");
        if (await SimulateCallAsync(contract, fn.GetCallData().ToHex(true), from, fn.AmountToSend == 0 ? null : fn.AmountToSend, ct) is { } error)
            throw new ContractRevertException(what, error);
        var receipt = await Web3.Eth.GetContractTransactionHandler<TFn>().SendRequestAndWaitForReceiptAsync(contract, fn, ct);
        if (receipt.Status?.Value != 1) throw new InvalidOperationException($"{what} failed on L1 (tx {receipt.TransactionHash})");
        return receipt;
    }

    // ---- registry ----

    public async Task<IReadOnlyList<Address>> ProposerSetAtAsync(ulong epoch, CancellationToken ct = default) =>
        [.. (await QueryAsync<ProposerSetAtFunction, List<string>>(Registry, new ProposerSetAtFunction { Epoch = epoch }, ct)).Select(Address.Parse)];

    public async Task<Address> ProposerForSlotAsync(ulong slot, CancellationToken ct = default) =>
        Address.Parse(await QueryAsync<ProposerForSlotFunction, string>(Registry, new ProposerForSlotFunction { Slot = slot }, ct));

    /// <summary>The proposer the schedule draws for a slot, slashed or not.</summary>
    public async Task<Address> DrawnProposerForSlotAsync(ulong slot, CancellationToken ct = default) =>
        Address.Parse(await QueryAsync<DrawnProposerForSlotFunction, string>(Registry, new DrawnProposerForSlotFunction { Slot = slot }, ct));

    /// <summary>The schedule seed of an epoch (may still change until <see cref="SeedIsFinalAsync"/>).</summary>
    public async Task<Hash32> SeedOfAsync(ulong epoch, CancellationToken ct = default) =>
        Hash32.FromBytes(await QueryAsync<SeedOfFunction, byte[]>(Registry, new SeedOfFunction { Epoch = epoch }, ct));

    public Task<bool> SeedIsFinalAsync(ulong epoch, CancellationToken ct = default) =>
        QueryAsync<SeedIsFinalFunction, bool>(Registry, new SeedIsFinalFunction { Epoch = epoch }, ct);

    /// <summary>Calls recordSeed() from the Web3's account (records the next epoch's randomness; first half of an epoch only).</summary>
    public Task<TransactionReceipt> RecordSeedAsync(CancellationToken ct = default) =>
        SendCheckedAsync(Registry, new RecordSeedFunction(), "recordSeed", ct);

    /// <summary>Whether recordSeed() would succeed now (null) or the refusal (NotInSeedWindow, SeedAlreadyRecorded).</summary>
    public Task<ContractError?> SimulateRecordSeedAsync(string from, CancellationToken ct = default) =>
        SimulateCallAsync(Registry, new RecordSeedFunction().GetCallData().ToHex(true), from, null, ct);

    public async Task<ProposerInfo> ProposerInfoAsync(Address proposer, CancellationToken ct = default)
    {
        var o = await QueryDtoAsync<ProposerInfoFunction, ProposerInfoOutput>(Registry, new ProposerInfoFunction { Proposer = proposer.ToString() }, ct);
        return new ProposerInfo(o.Bond, (ProposerStatus)o.Status, o.ActivationEpoch, o.ExitEpoch, o.WithdrawableAt);
    }

    public Task<BigInteger> TotalBurnedAsync(CancellationToken ct = default) => QueryAsync<TotalBurnedFunction, BigInteger>(Registry, new(), ct);

    /// <summary>Joins the proposer set from the Web3's account with <paramref name="bond"/> wei.</summary>
    public Task<TransactionReceipt> JoinAsync(BigInteger bond, CancellationToken ct = default) =>
        SendCheckedAsync(Registry, new JoinFunction { AmountToSend = bond }, "join", ct);

    // ---- escrow ----

    /// <summary>Available collateral of a builder allocated to <paramref name="relay"/> (excluding amounts requested for withdrawal).</summary>
    public Task<BigInteger> EscrowBalanceAsync(Address builder, Address relay, CancellationToken ct = default) =>
        QueryAsync<EscrowBalanceOfFunction, BigInteger>(Escrow, new EscrowBalanceOfFunction { Builder = builder.ToString(), Relay = relay.ToString() }, ct);

    /// <summary>True while the builder owes a shortfall (it may not bid).</summary>
    public Task<bool> IsBarredAsync(Address builder, CancellationToken ct = default) =>
        QueryAsync<IsBarredFunction, bool>(Escrow, new IsBarredFunction { Builder = builder.ToString() }, ct);

    public Task<BigInteger> EarningsOfAsync(Address payee, CancellationToken ct = default) =>
        QueryAsync<EarningsOfFunction, BigInteger>(Escrow, new EarningsOfFunction { Payee = payee.ToString() }, ct);

    /// <summary>Deposits collateral for the Web3's account, allocated to <paramref name="relay"/>.</summary>
    public Task<TransactionReceipt> DepositAsync(BigInteger amount, Address relay, CancellationToken ct = default) =>
        SendCheckedAsync(Escrow, new DepositFunction { AmountToSend = amount, Relay = relay.ToString() }, "deposit", ct);

    // ---- events ----

    async Task<List<EventLog<T>>> LogsAsync<T>(string contract, ulong fromBlock, ulong? toBlock, CancellationToken ct) where T : IEventDTO, new()
    {
        var ev = Web3.Eth.GetEvent<T>(contract);
        var filter = ev.CreateFilterInput(new BlockParameter(fromBlock), toBlock is { } t ? new BlockParameter(t) : BlockParameter.CreateLatest());
        return await Policy.RunAsync(() => ev.GetAllChangesAsync(filter), ct);
    }

    /// <summary>HeaderPosted logs of the inbox in [fromBlock, toBlock] (toBlock null = latest), in chain order.</summary>
    public async Task<IReadOnlyList<HeaderPostedLog>> GetHeaderPostedAsync(ulong fromBlock, ulong? toBlock = null, CancellationToken ct = default) =>
        [.. (await LogsAsync<HeaderPostedEvent>(Inbox, fromBlock, toBlock, ct)).Select(ToLog)];

    static HeaderPostedLog ToLog(EventLog<HeaderPostedEvent> l) => new(l.Event.Slot, Hash32.FromBytes(l.Event.HeaderHash),
        Address.Parse(l.Event.Proposer), Address.Parse(l.Event.Builder), Address.Parse(l.Event.Relay), l.Event.Price, Hash32.FromBytes(l.Event.BidsRoot),
        Signature.TryFromBytes(l.Event.ProposalSignature, out var sig, out _) ? sig : null,
        l.Log.TransactionHash, (ulong)l.Log.BlockNumber.Value, (ulong)l.Log.LogIndex.Value);

    /// <summary>The builders that deposited collateral allocated to <paramref name="relay"/> in [fromBlock, toBlock].</summary>
    public async Task<IReadOnlyList<Address>> GetDepositorsAsync(Address relay, ulong fromBlock, ulong toBlock, CancellationToken ct = default)
    {
        var logs = await LogsAsync<DepositedEvent>(Escrow, fromBlock, toBlock, ct);
        return [.. logs.Where(l => Address.Parse(l.Event.Relay) == relay).Select(l => Address.Parse(l.Event.Builder)).Distinct()];
    }

    /// <summary>HeaderSkipped logs (items behind the head that a batch skipped): (slot, header hash, tx hash).</summary>
    public async Task<IReadOnlyList<(ulong Slot, Hash32 HeaderHash, string TxHash)>> GetHeaderSkippedAsync(ulong fromBlock, ulong? toBlock = null, CancellationToken ct = default) =>
        [.. (await LogsAsync<HeaderSkippedEvent>(Inbox, fromBlock, toBlock, ct)).Select(l => (l.Event.Slot, Hash32.FromBytes(l.Event.HeaderHash), l.Log.TransactionHash))];

    public async Task<IReadOnlyList<EquivocationReportedLog>> GetEquivocationReportedAsync(ulong fromBlock, ulong? toBlock = null, CancellationToken ct = default) =>
        [.. (await LogsAsync<EquivocationReportedEvent>(Inbox, fromBlock, toBlock, ct)).Select(l => new EquivocationReportedLog(l.Event.Slot,
            Address.Parse(l.Event.Proposer), Address.Parse(l.Event.Reporter), Hash32.FromBytes(l.Event.ProposalHashA), Hash32.FromBytes(l.Event.ProposalHashB),
            l.Event.Burned, l.Log.TransactionHash, (ulong)l.Log.BlockNumber.Value))];

    public async Task<IReadOnlyList<ProposerSlashedLog>> GetProposerSlashedAsync(ulong fromBlock, ulong? toBlock = null, CancellationToken ct = default) =>
        [.. (await LogsAsync<ProposerSlashedEvent>(Registry, fromBlock, toBlock, ct)).Select(l => new ProposerSlashedLog(Address.Parse(l.Event.Proposer),
            Address.Parse(l.Event.Reporter), l.Event.Burned, l.Event.ExitEpoch, l.Log.TransactionHash, (ulong)l.Log.BlockNumber.Value))];
}
