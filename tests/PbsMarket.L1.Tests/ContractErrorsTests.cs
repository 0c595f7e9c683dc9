using Nethereum.Hex.HexConvertors.Extensions;
using PbsMarket.Core;

namespace PbsMarket.L1.Tests;

public sealed class ContractErrorsTests
{
    static string Word(BigInteger v) => v.ToByteArray(isUnsigned: true, isBigEndian: true).ToHex().PadLeft(64, '0');
    static string Selector(string sig) => Keccak.Hash(System.Text.Encoding.ASCII.GetBytes(sig)).ToString()[..10];

    [Fact]
    public void Decodes_custom_errors_of_the_abi_with_their_arguments()
    {
        Assert.Equal("SlotNotStarted(12)", ContractErrors.Decode(Selector("SlotNotStarted(uint64)") + Word(12)).ToString());
        var parent = Hash32.FromBytes(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
        Assert.Equal($"NotOnHead({parent},4,{Hash32.Zero},6)",
            ContractErrors.Decode(Selector("NotOnHead(bytes32,uint64,bytes32,uint64)") + parent.ToString()[2..] + Word(4) + Word(0) + Word(6)).ToString());
        Assert.Equal("WrongPrice(5,7)", ContractErrors.Decode(Selector("WrongPrice(uint256,uint256)") + Word(5) + Word(7)).ToString());
        var e = ContractErrors.Decode(Selector("NotScheduledProposer(uint64,address,address)") + Word(7) + Word(0xabcdef) + Word(1));
        Assert.Equal("NotScheduledProposer", e.Name);
        Assert.Equal(["7", "0x0000000000000000000000000000000000abcdef", "0x0000000000000000000000000000000000000001"], e.Args);
        Assert.Equal("BadBuilderSignature()", ContractErrors.Decode(Selector("BadBuilderSignature()")).ToString());
        Assert.Equal("Unknown", ContractErrors.Decode("0xdeadbeef").Name);
        Assert.Equal("Revert", ContractErrors.Decode("0x").Name);
        foreach (var name in new[] { "UnknownRelay", "RunnerUpNotInBidsRoot", "MissingAuctionResult", "NotInSeedWindow" }) Assert.Contains(name, ContractErrors.KnownNames);
    }
}
