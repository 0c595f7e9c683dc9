using System.Text.Json;
using Nethereum.Web3.Accounts;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.L2;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.L2.Tests;

/// <summary>
/// A market whose blocks execute: a real L1 (anvil), a relay that simulates every bid on the L2 node, and the L2 node
/// deriving the chain on a real L2 engine and serving the L2 JSON-RPC.
/// </summary>
/// <remarks>2 s slots: a bid waits for the L2 node to execute its parent, and the proposal must reach L1 in time.</remarks>
public sealed class MarketExecutionTests(TestServers servers) : IAsyncLifetime
{
    TestMarket _market = null!;
    L2Node _node = null!;
    RelayInstance _relay = null!;
    JsonRpcClient _l2 = null!;
    L2EngineNode _engine = null!;

    public async ValueTask InitializeAsync()
    {
        _market = await TestMarket.StartAsync(servers, slotMs: 2000);
        var engine = _engine = await servers.StartOwnAsync(new L2EngineNode());
        var options = new L2NodeOptions { L1Rpc = _market.Anvil.RpcUrl, EngineRpc = engine.RpcUrl, PollMs = 50 };
        _node = L2Node.Build(options, _market.Deployment);
        await _node.StartAsync();
        _relay = await _market.StartRelayAsync(c => c["Relay:L2Rpc"] = _node.RelayRpcUrl);
        options.Relays = [_relay.Url]; // the node reads the list at each round
        _l2 = new JsonRpcClient(_node.RpcUrl, TimeSpan.FromSeconds(10));
    }

    public async ValueTask DisposeAsync()
    {
        _l2.Dispose();
        await _market.DisposeAsync();
        await _node.DisposeAsync();
    }

    static readonly string[] Keys = PbsMarket.LocalServers.AnvilNode.DevKeys;

    /// <summary>Submits a bid built on the open auction, waiting (with a deadline) until the L2 node has executed its parent.</summary>
    async Task<(OpenAuction Auction, Hash32 HeaderHash)> BidAsync(ProtocolKey builder, Func<OpenAuction, (byte[] Payload, ulong GasUsed)> block, BigInteger value)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var a = await _market.NextAuctionAsync(_relay.Client, 700);
            var (payload, gas) = block(a);
            var bid = TestMarket.Bid(a, builder, value, payload, gas);
            try
            {
                var receipt = await _relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
                return (a, receipt.HeaderHash);
            }
            catch (RelayRefusedException e) when (e.Code == "unavailable" && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50); // the L2 node has not executed the auction's parent yet
            }
        }
    }

    async Task<JsonElement> WaitOnL1Async(Hash32 headerHash)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            var b = await _l2.CallAsync("pbs_blockOfHeader", [headerHash.ToString()]);
            if (b.ValueKind == JsonValueKind.Object && b.GetProperty("on_l1").GetBoolean()) return b;
            await Task.Delay(100);
        }
        throw new TimeoutException($"header {headerHash} did not reach L1 and the L2 node within 90 s");
    }

    [Fact]
    public async Task A_transfer_sent_with_an_ordinary_client_is_included_posted_to_L1_and_visible_in_the_L2_state()
    {
        // A user with one of the 20 funded test accounts and an ordinary wallet library (Nethereum, signing locally).
        var user = new Account(Keys[12], 901);
        var recipient = EngineTests.AddressOf(Keys[13]);
        var web3 = new Nethereum.Web3.Web3(user, _node.RpcUrl);
        Assert.Equal(901, (int)(await web3.Eth.ChainId.SendRequestAsync()).Value);
        var before = (await web3.Eth.GetBalance.SendRequestAsync(recipient)).Value;
        var txHash = await web3.Eth.GetEtherTransferService().TransferEtherAsync(recipient, 0.25m);
        Assert.Equal(1, (int)(await web3.Eth.Transactions.GetTransactionCount.SendRequestAsync(user.Address, Nethereum.RPC.Eth.DTOs.BlockParameter.CreatePending())).Value);

        // A builder takes it from the mempool and bids a share of its fee.
        var builder = TestMarket.Builders[0];
        var (a, headerHash) = await BidAsync(builder, _ =>
        {
            var pending = _l2.CallAsync("pbs_pendingTransactions", []).GetAwaiter().GetResult();
            var raws = pending.EnumerateArray().Where(t => t.GetProperty("hash").GetString() == txHash).Select(t => Hex.Decode(t.GetProperty("raw").GetString()!)).ToList();
            Assert.Single(raws);
            return (PayloadCodec.Encode(raws), 21_000);
        }, 10_000);
        await _market.WaitClosedAsync(a.Slot, _relay);
        var (status, answer) = await _relay.Client.PostRawAsync("relay/v1/proposer/proposals",
            await _market.ProposalBodyAsync(_relay.Url, a.Slot, headerHash, _market.ProposerOf(a.Slot)));
        Assert.True(status == 200, answer);

        var block = await WaitOnL1Async(headerHash);
        Assert.Equal(1, block.GetProperty("tx_count").GetInt32());
        var receipt = await web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(txHash);
        Assert.NotNull(receipt);
        Assert.Equal(1, (int)receipt.Status.Value);
        Assert.Equal(block.GetProperty("hash").GetString(), receipt.BlockHash);
        Assert.Equal(before + Nethereum.Web3.Web3.Convert.ToWei(0.25m), (await web3.Eth.GetBalance.SendRequestAsync(recipient)).Value);
        // The builder was the coinbase and earned the tip.
        var gas = (ulong)receipt.GasUsed.Value;
        Assert.Equal(21_000ul, gas);
        // The data API shows the block's fees as the simulation measured them: what the builder earned as coinbase
        // (the gas times the effective price, which is all tip on an L2 without base fee).
        using (var http = new HttpClient())
        {
            using var slot = JsonDocument.Parse(await http.GetStringAsync($"{_relay.Url}/relay/v1/data/slots/{a.Slot}"));
            var bid = slot.RootElement.GetProperty("bids").EnumerateArray().Single(x => x.GetProperty("header_hash").GetString() == headerHash.ToString());
            Assert.Equal((receipt.EffectiveGasPrice.Value * gas).ToString(System.Globalization.CultureInfo.InvariantCulture), bid.GetProperty("fees").GetString());
        }
        // Included transactions leave the mempool.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await _l2.CallAsync("pbs_pendingTransactions", [])).GetArrayLength() > 0 && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal(0, (await _l2.CallAsync("pbs_pendingTransactions", [])).GetArrayLength());

        // A restart of the L2 node, following no relay this time: it resets the engine and derives the chain from L1
        // alone, to the same block, receipt and balance.
        var l1Block = await _l2.CallAsync("pbs_blockOfHeader", [headerHash.ToString()]);
        await _node.DisposeAsync();
        _node = L2Node.Build(new L2NodeOptions { L1Rpc = _market.Anvil.RpcUrl, EngineRpc = _engine.RpcUrl, PollMs = 50 }, _market.Deployment);
        await _node.StartAsync();
        using var restarted = new JsonRpcClient(_node.RpcUrl, TimeSpan.FromSeconds(10));
        JsonElement again = default;
        deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            again = await restarted.CallAsync("pbs_blockOfHeader", [headerHash.ToString()]);
            if (again.ValueKind == JsonValueKind.Object) break;
            await Task.Delay(100);
        }
        Assert.Equal(JsonValueKind.Object, again.ValueKind);
        Assert.True(again.GetProperty("on_l1").GetBoolean());
        Assert.Equal(l1Block.GetProperty("number").GetString(), again.GetProperty("number").GetString());
        Assert.Equal(l1Block.GetProperty("timestamp").GetString(), again.GetProperty("timestamp").GetString());
        var web3Again = new Nethereum.Web3.Web3(user, _node.RpcUrl);
        Assert.Equal(1, (int)(await web3Again.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(txHash)).Status.Value);
        Assert.Equal(before + Nethereum.Web3.Web3.Convert.ToWei(0.25m), (await web3Again.Eth.GetBalance.SendRequestAsync(recipient)).Value);
    }

    [Fact]
    public async Task Bids_whose_blocks_do_not_execute_are_refused_with_their_code_and_never_served()
    {
        var builder = TestMarket.Builders[1];
        var recipient = EngineTests.AddressOf(Keys[14]);
        // Wait until a valid block is accepted: the auction's parent is then executed, and refusals are about the blocks.
        var (a, validHash) = await BidAsync(builder, _ => (PayloadCodec.Encode([EngineTests.Transfer(Keys[15], 0, recipient, 1)]), 21_000), 5_000);
        var cases = new (string Code, byte[] Payload, ulong Gas)[]
        {
            ("invalid_nonce", PayloadCodec.Encode([EngineTests.Transfer(Keys[16], 7, recipient, 1)]), 21_000),
            ("insufficient_funds", PayloadCodec.Encode([EngineTests.Transfer("0x" + new string('2', 64), 0, recipient, 1)]), 21_000),
            ("wrong_gas_used", PayloadCodec.Encode([EngineTests.Transfer(Keys[16], 0, recipient, 1, gas: 50_000)]), 30_000),
        };
        var others = TestMarket.Builders;
        for (var i = 0; i < cases.Length; i++)
        {
            var (code, payload, gas) = cases[i];
            var bid = TestMarket.Bid(a, others[2], 1_000_000 + i, payload, gas); // worth more than the valid bid
            var e = await Assert.ThrowsAsync<RelayRefusedException>(() => _relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload));
            Assert.Equal(code, e.Code);
            Assert.Equal(400, e.Status);
        }
        // The header served is the valid one, although the refused bids offered more.
        await _market.WaitClosedAsync(a.Slot, _relay);
        var proposer = _market.ProposerOf(a.Slot);
        using var http = new HttpClient();
        var request = new HttpRequestMessage(HttpMethod.Get, $"{_relay.Url}/relay/v1/proposer/header/{a.Slot}");
        request.Headers.Add("X-Pbs-Signature", proposer.Sign(Eip712.Digest(_market.Domain, new HeaderRequest(a.Slot, proposer.Address))).ToString());
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        using var doc = JsonDocument.Parse(body);
        Assert.Equal(validHash.ToString(), doc.RootElement.GetProperty("header_hash").GetString());
        Assert.Equal("1", doc.RootElement.GetProperty("bid_count").GetString());
    }

    [Fact]
    public async Task The_L2_RPC_refuses_what_would_change_the_engine_and_bad_transactions()
    {
        foreach (var method in new[] { "anvil_setBalance", "evm_mine", "eth_sendTransaction", "pbs_simulateBlock", "debug_traceTransaction" })
        {
            var e = await Assert.ThrowsAsync<JsonRpcException>(() => _l2.CallAsync(method, []));
            Assert.Equal(L2RpcServer.MethodNotFound, e.Code);
        }
        var wrongChain = EngineTests.Transfer(Keys[17], 0, EngineTests.AddressOf(Keys[18]), 1, chainId: 902);
        var chain = await Assert.ThrowsAsync<JsonRpcException>(() => _l2.CallAsync("eth_sendRawTransaction", [Hex.Encode(wrongChain)]));
        Assert.Contains("chain id 902", chain.RpcMessage, StringComparison.Ordinal);
        var poor = EngineTests.Transfer("0x" + new string('3', 64), 0, EngineTests.AddressOf(Keys[18]), 1);
        var funds = await Assert.ThrowsAsync<JsonRpcException>(() => _l2.CallAsync("eth_sendRawTransaction", [Hex.Encode(poor)]));
        Assert.Contains("insufficient funds", funds.RpcMessage, StringComparison.Ordinal);
        var garbage = await Assert.ThrowsAsync<JsonRpcException>(() => _l2.CallAsync("eth_sendRawTransaction", ["0x1234"]));
        Assert.Contains("invalid transaction", garbage.RpcMessage, StringComparison.Ordinal);
        // The same transaction twice is taken once; a replacement must pay 10% more.
        var tx = EngineTests.Transfer(Keys[17], 0, EngineTests.AddressOf(Keys[18]), 1);
        Assert.Equal((await _l2.CallAsync("eth_sendRawTransaction", [Hex.Encode(tx)])).GetString(), (await _l2.CallAsync("eth_sendRawTransaction", [Hex.Encode(tx)])).GetString());
        var cheap = EngineTests.Transfer(Keys[17], 0, EngineTests.AddressOf(Keys[18]), 2);
        var under = await Assert.ThrowsAsync<JsonRpcException>(() => _l2.CallAsync("eth_sendRawTransaction", [Hex.Encode(cheap)]));
        Assert.Contains("underpriced", under.RpcMessage, StringComparison.Ordinal);
    }
}
