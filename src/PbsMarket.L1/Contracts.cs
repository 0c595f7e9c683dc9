using Nethereum.ABI.FunctionEncoding.Attributes;
using Nethereum.Contracts;
using Nethereum.JsonRpc.Client;
using Nethereum.Web3;

namespace PbsMarket.L1;

// The view functions the relay reads, as Nethereum function messages (ABI from contracts/src).

[Function("proposerSetAt", "address[]")]
public sealed class ProposerSetAtFunction : FunctionMessage
{
    [Parameter("uint64", "epoch", 1)] public ulong Epoch { get; set; }
}

/// <summary>balanceOf(builder, relay): the builder's available collateral allocated to one relay.</summary>
[Function("balanceOf", "uint256")]
public sealed class EscrowBalanceOfFunction : FunctionMessage
{
    [Parameter("address", "builder", 1)] public string Builder { get; set; } = "";
    [Parameter("address", "relay", 2)] public string Relay { get; set; } = "";
}

public static class L1Rpc
{
    /// <summary>A Web3 client whose every RPC call gives up after <paramref name="timeout"/>.</summary>
    public static Web3 Connect(string rpcUrl, TimeSpan? timeout = null, Nethereum.Web3.Accounts.Account? account = null)
    {
        var http = new HttpClient { Timeout = timeout ?? TimeSpan.FromSeconds(5) };
        var client = new RpcClient(new Uri(rpcUrl), http);
        return account is null ? new Web3(client) : new Web3(account, client);
    }
}
