using PbsMarket.Core;

namespace PbsMarket.Builder;

/// <summary>A builder's key and the signing it does: headers (bids) under the market's EIP-712 domain.</summary>
public sealed class BidSigner(ProtocolKey key)
{
    public Address Address => key.Address;

    public Signature SignHeader(Eip712Domain domain, Header header) => key.Sign(Eip712.Digest(domain, header));

    /// <summary>Checks a relay receipt: the relay's signature over BidReceipt(headerHash, receivedAtMs).</summary>
    public static bool VerifyReceipt(Eip712Domain domain, BidReceiptResponse receipt, Address relay) =>
        SignatureRecovery.Verify(Eip712.Digest(domain, new BidReceipt(receipt.HeaderHash, receipt.ReceivedAtMs)), receipt.RelaySignature, relay);
}
