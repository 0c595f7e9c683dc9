// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Header, PostedHeader, IPbsErrors} from "../src/PbsTypes.sol";
import {Inbox} from "../src/Inbox.sol";

contract InboxTest is Fixture {
    event HeaderPosted(
        uint64 indexed slot,
        bytes32 indexed headerHash,
        address indexed proposer,
        address builder,
        uint256 price,
        bytes32 bidsRoot
    );

    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    // ------------------------------------------------------------------ EIP-712 parity

    function test_domainSeparatorMatchesEip712() public view {
        bytes32 expected = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("PbsMarket"),
                keccak256("1"),
                block.chainid,
                address(inbox)
            )
        );
        assertEq(inbox.domainSeparator(), expected);
    }

    function test_hashesMatchManualEncoding() public view {
        Header memory h = header(10, 1, bytes32(0), hex"c0", 7 ether);
        bytes32 typeHash = keccak256(
            "Header(uint256 l2ChainId,uint64 slot,uint64 number,bytes32 parentHash,uint64 timestampMs,uint64 gasLimit,uint64 gasUsed,bytes32 payloadHash,address builder,address proposer,uint256 value)"
        );
        assertEq(inbox.HEADER_TYPEHASH(), typeHash);
        bytes32 hh = keccak256(
            abi.encode(
                typeHash,
                h.l2ChainId,
                h.slot,
                h.number,
                h.parentHash,
                h.timestampMs,
                h.gasLimit,
                h.gasUsed,
                h.payloadHash,
                h.builder,
                h.proposer,
                h.value
            )
        );
        assertEq(inbox.hashHeader(h), hh);
        assertEq(
            inbox.headerDigest(h), keccak256(abi.encodePacked(hex"1901", inbox.domainSeparator(), hh))
        );
        bytes32 ph = keccak256(abi.encode(keccak256("Proposal(uint64 slot,bytes32 headerHash)"), uint64(10), hh));
        assertEq(inbox.hashProposal(10, hh), ph);
        assertEq(inbox.proposalDigest(10, hh), keccak256(abi.encodePacked(hex"1901", inbox.domainSeparator(), ph)));
    }

    /// @notice Fixed vector for the C# parity tests (hashStruct does not depend on the domain).
    function test_headerHashVector() public view {
        Header memory h = Header({
            l2ChainId: 424242,
            slot: 7,
            number: 3,
            parentHash: bytes32(uint256(0x1234)),
            timestampMs: 1_700_000_014_000,
            gasLimit: 30_000_000,
            gasUsed: 21_000,
            payloadHash: keccak256(hex"c0"),
            builder: address(0x1111111111111111111111111111111111111111),
            proposer: address(0x2222222222222222222222222222222222222222),
            value: 1 ether
        });
        bytes32 hh = inbox.hashHeader(h);
        log("vector hashHeader", hh);
        log("vector hashProposal(7, hashHeader)", inbox.hashProposal(7, hh));
        // expected values computed independently with ethers v6 TypedDataEncoder
        assertEq(hh, 0xafe67737fe8ebe34ade1f6f3c6dd78eb532939fbab17b2055085ba2146d4f509);
        assertEq(inbox.hashProposal(7, hh), 0x0193f401ee6d783d008c12a00eb25774e4f11e49be07ea9e676b93d950124e98);
        // domain {PbsMarket, 1, 31337, 0x5FbDB2315678afecb367f032d93F642f64180aa3} and the full Header digest
        bytes32 dom = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("PbsMarket"),
                keccak256("1"),
                uint256(31337),
                address(0x5FbDB2315678afecb367f032d93F642f64180aa3)
            )
        );
        assertEq(dom, 0xb1d2b36a069d9639996214e18873981605593d68cf84c0e580af300701e76f3b);
        assertEq(
            keccak256(abi.encodePacked(hex"1901", dom, hh)),
            0x89f894f1b8c73432ede37ff31dbea70a8d8140017fb6e4d9cf091c5fc991998f
        );
    }

    // ------------------------------------------------------------------ happy paths

    function test_postSingleHeader() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        bytes32 hh = inbox.hashHeader(p.header);
        address proposer = p.header.proposer;
        vm.expectEmit(true, true, true, true, address(inbox));
        emit HeaderPosted(100, hh, proposer, builder, 0.5 ether, keccak256("bids"));
        inbox.postHeaders(one(p));

        assertEq(inbox.headerOfSlot(100), hh);
        assertEq(inbox.bidsRootOfSlot(100), keccak256("bids"));
        assertEq(inbox.lastPostedSlot(), 100);
        assertEq(inbox.headerCount(), 1);
        (bytes32 headHash, uint64 headNumber) = inbox.head();
        assertEq(headHash, hh);
        assertEq(headNumber, 1);
        (bool known, uint64 slot, uint64 number) = inbox.headerInfo(hh);
        assertTrue(known);
        assertEq(slot, 100);
        assertEq(number, 1);
        assertEq(escrow.balanceOf(builder), 99.5 ether);
        assertEq(escrow.earningsOf(proposer), 0.5 ether);

        uint256 before = proposer.balance;
        vm.prank(proposer);
        escrow.claimEarnings();
        assertEq(proposer.balance, before + 0.5 ether);
        assertEq(escrow.earningsOf(proposer), 0);
    }

    function test_postChainInOneBatchAndAcrossBatches() public {
        PostedHeader[] memory a = chain(200, 5, bytes32(0), 0, hex"c0");
        inbox.postHeaders(a);
        bytes32 last = inbox.hashHeader(a[4].header);
        (bytes32 hh, uint64 num) = inbox.head();
        assertEq(hh, last);
        assertEq(num, 5);
        // next batch extends the stored head, skipping slots 205..209
        PostedHeader[] memory b = chain(210, 3, last, 5, hex"c0");
        inbox.postHeaders(b);
        (hh, num) = inbox.head();
        assertEq(num, 8);
        assertEq(inbox.lastPostedSlot(), 212);
        assertEq(inbox.headerCount(), 8);
        assertEq(escrow.balanceOf(builder), 100 ether - 8 * 0.25 ether);
    }

    function test_parentMayBeAnyStoredHeaderOrGenesis() public {
        PostedHeader[] memory a = chain(300, 3, bytes32(0), 0, hex"c0");
        inbox.postHeaders(a);
        // fork off the first header (number 1) -> number 2
        PostedHeader memory f = item(305, 2, inbox.hashHeader(a[0].header));
        inbox.postHeaders(one(f));
        (, uint64 num) = inbox.head();
        assertEq(num, 2);
        // and from genesis again
        PostedHeader memory g = item(306, 1, bytes32(0));
        inbox.postHeaders(one(g));
        (, num) = inbox.head();
        assertEq(num, 1);
    }

    function test_zeroPriceSkipsSettlement() public {
        bytes memory payload = hex"c0";
        PostedHeader memory p = signed(header(100, 1, bytes32(0), payload, 0), payload, 0, bytes32(0));
        inbox.postHeaders(one(p));
        assertEq(escrow.balanceOf(builder), 100 ether);
        assertEq(inbox.bidsRootOfSlot(100), bytes32(0));
    }

    function test_acceptsVZeroOne() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.builderSignature[64] = bytes1(uint8(p.builderSignature[64]) - 27);
        p.proposalSignature[64] = bytes1(uint8(p.proposalSignature[64]) - 27);
        inbox.postHeaders(one(p));
        assertEq(inbox.headerOfSlot(100), inbox.hashHeader(p.header));
    }

    function test_slotMayStartUpToOneSlotAhead() public {
        uint64 cur = inbox.currentSlot();
        PostedHeader memory p = item(cur + 1, 1, bytes32(0));
        inbox.postHeaders(one(p));
        assertEq(inbox.lastPostedSlot(), cur + 1);
    }

    // ------------------------------------------------------------------ refusals

    function test_revert_emptyBatch() public {
        vm.expectRevert(IPbsErrors.EmptyBatch.selector);
        inbox.postHeaders(new PostedHeader[](0));
    }

    function test_revert_wrongL2ChainId() public {
        bytes memory payload = hex"c0";
        Header memory h = header(100, 1, bytes32(0), payload, 1 ether);
        h.l2ChainId = 1;
        PostedHeader memory p = signed(h, payload, 0, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.WrongL2ChainId.selector, L2_CHAIN_ID, 1));
        inbox.postHeaders(one(p));
    }

    function test_revert_slotAlreadyPosted() public {
        inbox.postHeaders(one(item(100, 1, bytes32(0))));
        bytes memory payload = hex"c1c0";
        PostedHeader memory other = signed(header(100, 1, bytes32(0), payload, 2 ether), payload, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.SlotAlreadyPosted.selector, uint64(100)));
        inbox.postHeaders(one(other));
        // the identical header again is refused too
        PostedHeader memory same = item(100, 1, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.SlotAlreadyPosted.selector, uint64(100)));
        inbox.postHeaders(one(same));
    }

    function test_revert_slotNotIncreasingAcrossBatches() public {
        inbox.postHeaders(one(item(100, 1, bytes32(0))));
        PostedHeader memory p = item(99, 1, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.SlotNotIncreasing.selector, uint64(99), uint64(100)));
        inbox.postHeaders(one(p));
    }

    function test_revert_slotNotIncreasingWithinBatch() public {
        PostedHeader[] memory a = two(item(101, 1, bytes32(0)), item(100, 1, bytes32(0)));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.SlotNotIncreasing.selector, uint64(100), uint64(101)));
        inbox.postHeaders(a);
    }

    function test_revert_duplicateSlotWithinBatch() public {
        PostedHeader[] memory a = two(item(100, 1, bytes32(0)), item(100, 1, bytes32(0)));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.SlotAlreadyPosted.selector, uint64(100)));
        inbox.postHeaders(a);
    }

    function test_revert_slotInFuture() public {
        uint64 cur = inbox.currentSlot();
        PostedHeader memory p = item(cur + 2, 1, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.SlotInFuture.selector, cur + 2));
        inbox.postHeaders(one(p));
    }

    function test_revert_badTimestamp() public {
        bytes memory payload = hex"c0";
        Header memory h = header(100, 1, bytes32(0), payload, 1 ether);
        h.timestampMs += 1;
        PostedHeader memory p = signed(h, payload, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.BadTimestamp.selector, startMs(100), startMs(100) + 1));
        inbox.postHeaders(one(p));
    }

    function test_revert_gasUsedAboveLimit() public {
        bytes memory payload = hex"c0";
        Header memory h = header(100, 1, bytes32(0), payload, 1 ether);
        h.gasUsed = h.gasLimit + 1;
        PostedHeader memory p = signed(h, payload, 0, 0);
        vm.expectRevert(IPbsErrors.GasUsedAboveLimit.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_priceAboveValue() public {
        bytes memory payload = hex"c0";
        PostedHeader memory p = signed(header(100, 1, bytes32(0), payload, 1 ether), payload, 1 ether + 1, 0);
        vm.expectRevert(IPbsErrors.PriceAboveValue.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_unknownParent() public {
        PostedHeader memory p = item(100, 2, keccak256("nope"));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownParent.selector, keccak256("nope")));
        inbox.postHeaders(one(p));
    }

    function test_revert_badNumberOnGenesis() public {
        PostedHeader memory p = item(100, 2, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.BadNumber.selector, uint64(1), uint64(2)));
        inbox.postHeaders(one(p));
    }

    function test_revert_badNumberOnStoredParent() public {
        PostedHeader memory a = item(100, 1, bytes32(0));
        inbox.postHeaders(one(a));
        PostedHeader memory b = item(101, 3, inbox.hashHeader(a.header));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.BadNumber.selector, uint64(2), uint64(3)));
        inbox.postHeaders(one(b));
    }

    function test_revert_payloadHashMismatch() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.payload = hex"c1";
        vm.expectRevert(IPbsErrors.PayloadHashMismatch.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_builderSignatureWrongKey() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.builderSignature = sig(0xBAD, inbox.headerDigest(p.header));
        vm.expectRevert(IPbsErrors.BadBuilderSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_builderSignatureOverOtherHeader() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.header.value = 2 ether; // signatures were made over value = 1 ether
        vm.expectRevert(IPbsErrors.BadBuilderSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_builderSignatureBadLength() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.builderSignature = bytes.concat(p.builderSignature, hex"00");
        vm.expectRevert(IPbsErrors.BadBuilderSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_builderSignatureHighS() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.builderSignature = _malleate(p.builderSignature);
        vm.expectRevert(IPbsErrors.BadBuilderSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_builderZeroAddressWithGarbageSignature() public {
        bytes memory payload = hex"c0";
        Header memory h = header(100, 1, bytes32(0), payload, 0);
        h.builder = address(0);
        PostedHeader memory p;
        p.header = h;
        p.builderSignature = new bytes(65); // recovers nothing
        p.proposalSignature = sig(key(h.proposer), inbox.proposalDigest(100, inbox.hashHeader(h)));
        p.payload = payload;
        vm.expectRevert(IPbsErrors.BadBuilderSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_notScheduledProposer() public {
        bytes memory payload = hex"c0";
        Header memory h = header(100, 1, bytes32(0), payload, 1 ether);
        address expected = h.proposer;
        address other = genesisProposers[0] == expected ? genesisProposers[1] : genesisProposers[0];
        h.proposer = other;
        PostedHeader memory p = signed(h, payload, 0, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IPbsErrors.NotScheduledProposer.selector, uint64(100), expected, other)
        );
        inbox.postHeaders(one(p));
    }

    function test_revert_proposalSignedByOther() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.proposalSignature = sig(builderPk, inbox.proposalDigest(100, inbox.hashHeader(p.header)));
        vm.expectRevert(IPbsErrors.BadProposerSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_proposalForOtherSlot() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.proposalSignature = sig(key(p.header.proposer), inbox.proposalDigest(101, inbox.hashHeader(p.header)));
        vm.expectRevert(IPbsErrors.BadProposerSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_proposalHighS() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.proposalSignature = _malleate(p.proposalSignature);
        vm.expectRevert(IPbsErrors.BadProposerSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_noProposerForSlot() public {
        for (uint256 i = 0; i < NUM_GENESIS; ++i) {
            vm.prank(genesisProposers[i]);
            registry.requestExit();
        }
        uint64 emptyEpoch = registry.currentEpoch() + 2;
        uint64 slot = emptyEpoch * SLOTS_PER_EPOCH;
        vm.warp(startMs(slot) / 1000 + 1);
        PostedHeader memory p;
        bytes memory payload = hex"c0";
        p.header = header(slot, 1, bytes32(0), payload, 0);
        p.header.proposer = genesisProposers[0];
        p.payload = payload;
        p.builderSignature = sig(builderPk, inbox.headerDigest(p.header));
        p.proposalSignature = sig(key(genesisProposers[0]), inbox.proposalDigest(slot, inbox.hashHeader(p.header)));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NoProposerForSlot.selector, slot));
        inbox.postHeaders(one(p));
    }

    function test_revert_insufficientEscrow() public {
        bytes memory payload = hex"c0";
        PostedHeader memory p = signed(header(100, 1, bytes32(0), payload, 500 ether), payload, 101 ether, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IPbsErrors.InsufficientEscrow.selector, builder, 101 ether, 100 ether)
        );
        inbox.postHeaders(one(p));
    }

    function test_batchIsAllOrNothing() public {
        PostedHeader[] memory a = chain(100, 3, bytes32(0), 0, hex"c0");
        a[2].payload = hex"c1";
        vm.expectRevert(IPbsErrors.PayloadHashMismatch.selector);
        inbox.postHeaders(a);
        assertEq(inbox.headerOfSlot(100), bytes32(0));
        assertEq(inbox.headerCount(), 0);
        assertEq(escrow.balanceOf(builder), 100 ether);
    }

    // ------------------------------------------------------------------ fuzz

    /// @notice Any builder key signs, any scheduled slot: accepted, and the price moves exactly.
    function testFuzz_signatureAndSettlement(uint256 pk, uint64 slot, uint256 deposit, uint256 value, uint256 price)
        public
    {
        pk = bound(pk, 1, SECP256K1_N - 1);
        slot = uint64(bound(slot, 0, inbox.currentSlot() + 1));
        deposit = bound(deposit, 1, 1e30);
        value = bound(value, 0, 1e32);
        price = bound(price, 0, value < deposit ? value : deposit);
        address b = vm.addr(pk);
        vm.assume(keyOf[b] == 0);
        keyOf[b] = pk;
        vm.deal(b, deposit);
        vm.prank(b);
        escrow.deposit{value: deposit}();

        bytes memory payload = abi.encodePacked(keccak256(abi.encode(pk)));
        Header memory h = header(slot, 1, bytes32(0), payload, value);
        h.builder = b;
        PostedHeader memory p = signed(h, payload, price, bytes32(0));
        uint256 earnedBefore = escrow.earningsOf(h.proposer);
        inbox.postHeaders(one(p));
        assertEq(escrow.balanceOf(b), deposit - price);
        assertEq(escrow.earningsOf(h.proposer), earnedBefore + price);
        assertEq(inbox.headerOfSlot(slot), inbox.hashHeader(h));
    }

    /// @notice A signature by any key other than the builder's is refused.
    function testFuzz_wrongBuilderKeyRefused(uint256 pk) public {
        pk = bound(pk, 1, SECP256K1_N - 1);
        vm.assume(pk != builderPk);
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.builderSignature = sig(pk, inbox.headerDigest(p.header));
        vm.expectRevert(IPbsErrors.BadBuilderSignature.selector);
        inbox.postHeaders(one(p));
    }

    /// @notice Flipping any byte of either signature makes the batch fail.
    function testFuzz_corruptedSignatureRefused(uint8 index, uint8 xorMask, bool builderSig) public {
        vm.assume(xorMask != 0);
        index = uint8(bound(index, 0, 64));
        PostedHeader memory p = item(100, 1, bytes32(0));
        bytes memory s = builderSig ? p.builderSignature : p.proposalSignature;
        s[index] = bytes1(uint8(s[index]) ^ xorMask);
        // v bytes 27<->0 / 28<->1 are equivalent encodings; skip those masks
        if (index == 64) vm.assume(uint8(s[64]) != 0 && uint8(s[64]) != 1 && uint8(s[64]) != 27 && uint8(s[64]) != 28);
        vm.expectRevert();
        inbox.postHeaders(one(p));
    }

    /// @notice Recovery helper agrees with vm.sign for any key and digest, in both v encodings.
    function testFuzz_recoverSigner(uint256 pk, bytes32 digest) public view {
        pk = bound(pk, 1, SECP256K1_N - 1);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        assertEq(inbox.recoverSigner(digest, abi.encodePacked(r, s, v)), vm.addr(pk));
        assertEq(inbox.recoverSigner(digest, abi.encodePacked(r, s, v - 27)), vm.addr(pk));
    }

    // ------------------------------------------------------------------ helpers

    function _malleate(bytes memory s65) internal pure returns (bytes memory) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(s65, 32))
            s := mload(add(s65, 64))
            v := byte(0, mload(add(s65, 96)))
        }
        bytes32 s2 = bytes32(SECP256K1_N - uint256(s));
        uint8 v2 = v == 27 ? 28 : 27;
        return abi.encodePacked(r, s2, v2);
    }
}
