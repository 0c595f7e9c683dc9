using System.Text.Json;
using Nethereum.Hex.HexTypes;
using Nethereum.Web3;
using Nethereum.Web3.Accounts;
using PbsMarket.Core;

namespace PbsMarket.L1;

/// <summary>Where the market's contracts live and the parameters they were deployed with.</summary>
public sealed record DeployedMarket(
    long L1ChainId, string Registry, string Escrow, string Inbox, long L2ChainId,
    long GenesisMs, long SlotMs, long SlotsPerEpoch, string MinBond, long ExitDelaySeconds, long WithdrawalDelaySeconds,
    IReadOnlyList<string> GenesisProposers, ulong DeployedAtBlock,
    string PriceRule = "second_price", string ReservePrice = "0", string MinRelayBond = "1000000000000000000", long RelayExitDelaySeconds = 3600)
{
    /// <summary>The inbox's price rule (an L1 market parameter in protocol version 2).</summary>
    public PriceRule Rule => AuctionRules.TryParsePriceRule(PriceRule, out var r) ? r : throw new InvalidDataException($"unknown price rule {PriceRule}");
    public BigInteger Reserve => BigInteger.Parse(ReservePrice, System.Globalization.CultureInfo.InvariantCulture);

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, JsonSerializer.Serialize(this, Json));
    }

    public static DeployedMarket Load(string path) =>
        JsonSerializer.Deserialize<DeployedMarket>(File.ReadAllText(path), Json)
        ?? throw new InvalidDataException($"{path} is not a deployment file");
}

public sealed record DeployParameters(
    long L2ChainId, long GenesisMs, long SlotMs = 2000, long SlotsPerEpoch = 32, BigInteger? MinBond = null,
    long ExitDelaySeconds = 3600, long WithdrawalDelaySeconds = 3600, IReadOnlyList<Address>? GenesisProposers = null,
    PriceRule PriceRule = PriceRule.SecondPrice, BigInteger? ReservePrice = null, BigInteger? MinRelayBond = null, long RelayExitDelaySeconds = 3600);

/// <summary>
/// Deploys the registry, escrow and inbox from forge's build output and wires them together:
/// registry(genesisMs, slotMs, slotsPerEpoch, minBond, exitDelay, genesisProposers) with the genesis
/// bonds, escrow(withdrawalDelay), inbox(registry, escrow, l2ChainId, priceRule, reservePrice, minRelayBond,
/// relayExitDelay) (protocol version 2), then registry.setInbox and escrow.setInbox. Relays register themselves
/// with their own key (<see cref="RegisterRelayAsync"/>), and builders allocate collateral per relay
/// (<see cref="DepositAsync"/>).
/// </summary>
public static class Deployer
{
    public static async Task<DeployedMarket> DeployAsync(string rpcUrl, string deployerKey, DeployParameters p, string? outDir = null,
        Action<string>? progress = null, CancellationToken ct = default)
    {
        outDir ??= ContractArtifact.DefaultOutDir();
        var chainId = await L1Rpc.Connect(rpcUrl).Eth.ChainId.SendRequestAsync();
        var account = new Account(deployerKey, chainId.Value);
        var web3 = L1Rpc.Connect(rpcUrl, TimeSpan.FromSeconds(30), account);
        web3.TransactionManager.UseLegacyAsDefault = false;
        var minBond = p.MinBond ?? Nethereum.Util.UnitConversion.Convert.ToWei(1);
        var proposers = (p.GenesisProposers ?? []).Select(a => a.ToString()).ToList();
        var reserve = p.ReservePrice ?? BigInteger.Zero;
        var relayBond = p.MinRelayBond ?? Nethereum.Util.UnitConversion.Convert.ToWei(1);

        var registry = ContractArtifact.Load(outDir, "ProposerRegistry");
        var escrow = ContractArtifact.Load(outDir, "BuilderEscrow");
        var inbox = ContractArtifact.Load(outDir, "Inbox");

        progress?.Invoke("deploying ProposerRegistry");
        var registryReceipt = await web3.Eth.DeployContract.SendRequestAndWaitForReceiptAsync(
            registry.Abi, registry.Bytecode, account.Address, new HexBigInteger(8_000_000), new HexBigInteger(minBond * proposers.Count), null,
            (ulong)p.GenesisMs, (ulong)p.SlotMs, (ulong)p.SlotsPerEpoch, minBond, (ulong)p.ExitDelaySeconds, proposers);
        Check(registryReceipt, "ProposerRegistry");
        progress?.Invoke("deploying BuilderEscrow");
        var escrowReceipt = await web3.Eth.DeployContract.SendRequestAndWaitForReceiptAsync(
            escrow.Abi, escrow.Bytecode, account.Address, new HexBigInteger(8_000_000), null, (ulong)p.WithdrawalDelaySeconds);
        Check(escrowReceipt, "BuilderEscrow");
        progress?.Invoke("deploying Inbox");
        var inboxReceipt = await web3.Eth.DeployContract.SendRequestAndWaitForReceiptAsync(
            inbox.Abi, inbox.Bytecode, account.Address, new HexBigInteger(8_000_000), null,
            registryReceipt.ContractAddress, escrowReceipt.ContractAddress, new BigInteger(p.L2ChainId),
            (byte)(p.PriceRule == PriceRule.FirstPrice ? 0 : 1), reserve, relayBond, (ulong)p.RelayExitDelaySeconds);
        Check(inboxReceipt, "Inbox");

        progress?.Invoke("wiring registry and escrow to the inbox");
        foreach (var (artifact, address) in new[] { (registry, registryReceipt.ContractAddress), (escrow, escrowReceipt.ContractAddress) })
        {
            var fn = web3.Eth.GetContract(artifact.Abi, address).GetFunction("setInbox");
            var receipt = await fn.SendTransactionAndWaitForReceiptAsync(account.Address, new HexBigInteger(200_000), null, null, inboxReceipt.ContractAddress);
            Check(receipt, $"{artifact.Name}.setInbox");
        }
        return new DeployedMarket((long)chainId.Value, registryReceipt.ContractAddress.ToLowerInvariant(), escrowReceipt.ContractAddress.ToLowerInvariant(),
            inboxReceipt.ContractAddress.ToLowerInvariant(), p.L2ChainId, p.GenesisMs, p.SlotMs, p.SlotsPerEpoch, minBond.ToString(),
            p.ExitDelaySeconds, p.WithdrawalDelaySeconds, proposers, (ulong)registryReceipt.BlockNumber.Value,
            p.PriceRule.ToWire(), reserve.ToString(System.Globalization.CultureInfo.InvariantCulture),
            relayBond.ToString(System.Globalization.CultureInfo.InvariantCulture), p.RelayExitDelaySeconds);
    }

    static void Check(Nethereum.RPC.Eth.DTOs.TransactionReceipt receipt, string what)
    {
        if (receipt.Status?.Value != 1) throw new InvalidOperationException($"{what} failed on L1 (tx {receipt.TransactionHash})");
    }

    /// <summary>Deposits collateral for a builder into the escrow (from the builder's own key), allocated to <paramref name="relay"/>.</summary>
    public static async Task DepositAsync(string rpcUrl, DeployedMarket market, string builderKey, BigInteger amount, Address relay)
    {
        var account = new Account(builderKey, market.L1ChainId);
        var web3 = L1Rpc.Connect(rpcUrl, TimeSpan.FromSeconds(30), account);
        await new InboxClient(web3, market).DepositAsync(amount, relay);
    }

    /// <summary>Registers a relay on the inbox (from the relay's own key) with the market's minimum relay bond, unless it already is one.</summary>
    public static async Task RegisterRelayAsync(string rpcUrl, DeployedMarket market, string relayKey, BigInteger? bond = null)
    {
        var account = new Account(relayKey, market.L1ChainId);
        var web3 = L1Rpc.Connect(rpcUrl, TimeSpan.FromSeconds(30), account);
        var client = new InboxClient(web3, market);
        if (await client.IsRelayAsync(Address.Parse(account.Address))) return;
        await client.RegisterRelayAsync(bond ?? BigInteger.Parse(market.MinRelayBond, System.Globalization.CultureInfo.InvariantCulture));
    }
}
