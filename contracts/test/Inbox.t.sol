// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Vm.sol";
import {Header, Proposal, AuctionResult, RunnerUp, PostedHeader, IPbsErrors} from "../src/PbsTypes.sol";
import {Inbox} from "../src/Inbox.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @notice Inbox v2 under the second-price rule: hashing parity, happy paths, every refusal of postHeaders in the
/// documented order, and fuzzing of price, bids root, parent and slot in posted batches.
contract InboxTest is Fixture {
    event HeaderPosted(
        uint64 indexed slot,
        bytes32 indexed headerHash,
        address indexed proposer,
        address builder,
        address relay,
        uint256 price,
        bytes32 bidsRoot,
        bytes proposalSignature
    );
    event HeaderSkipped(uint64 indexed slot, bytes32 indexed headerHash);
    event Shortfall(
        address indexed builder, address indexed relay, address indexed proposer, uint256 price, uint256 missing
    );

    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant ATTACKER_RELAY_PK = 0xBADBAD;

    // ------------------------------------------------------------------ EIP-712 and bids-root parity

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
        assertEq(inbox.PROTOCOL_VERSION(), 2);
    }

    function test_hashesMatchManualEncoding() public view {
        Header memory h = header(10, 1, bytes32(0), hex"c0", 7 ether);
        bytes32 typeHash = keccak256(
            "Header(uint256 l2ChainId,uint64 slot,uint64 number,bytes32 parentHash,uint64 timestampMs,uint64 gasLimit,uint64 gasUsed,bytes32 payloadHash,address builder,address proposer,uint256 value)"
        );
        assertEq(inbox.HEADER_TYPEHASH(), typeHash);
        bytes32 hh = keccak256(abi.encode(typeHash, h));
        assertEq(inbox.hashHeader(h), hh);
        assertEq(inbox.headerDigest(h), keccak256(abi.encodePacked(hex"1901", inbox.domainSeparator(), hh)));

        bytes32 pt = keccak256("Proposal(uint64 slot,bytes32 headerHash,uint256 price,bytes32 bidsRoot,address relay)");
        assertEq(inbox.PROPOSAL_TYPEHASH(), pt);
        Proposal memory pr = Proposal(10, hh, 3 ether, keccak256("root"), relay);
        bytes32 ph = keccak256(abi.encode(pt, uint64(10), hh, uint256(3 ether), keccak256("root"), relay));
        assertEq(inbox.hashProposal(pr), ph);
        assertEq(inbox.proposalDigest(pr), keccak256(abi.encodePacked(hex"1901", inbox.domainSeparator(), ph)));

        bytes32 at = keccak256("AuctionResult(uint64 slot,bytes32 headerHash,uint256 price,bytes32 bidsRoot,uint32 bidCount)");
        assertEq(inbox.AUCTION_RESULT_TYPEHASH(), at);
        AuctionResult memory ar = AuctionResult(10, hh, 3 ether, keccak256("root"), 5);
        bytes32 ah = keccak256(abi.encode(at, uint64(10), hh, uint256(3 ether), keccak256("root"), uint32(5)));
        assertEq(inbox.hashAuctionResult(ar), ah);
        assertEq(inbox.auctionResultDigest(ar), keccak256(abi.encodePacked(hex"1901", inbox.domainSeparator(), ah)));
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
        // expected values computed independently with ethers v6 TypedDataEncoder
        assertEq(hh, 0xafe67737fe8ebe34ade1f6f3c6dd78eb532939fbab17b2055085ba2146d4f509);
        Proposal memory pr = Proposal(7, hh, 0.5 ether, bytes32(uint256(0xabcd)), address(0x3333333333333333333333333333333333333333));
        log("vector v2 hashProposal(7, hh, 0.5 ether, 0x..abcd, 0x3333..)", inbox.hashProposal(pr));
        assertEq(
            inbox.hashProposal(pr),
            keccak256(abi.encode(inbox.PROPOSAL_TYPEHASH(), pr.slot, pr.headerHash, pr.price, pr.bidsRoot, pr.relay))
        );
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

    /// @notice The 3-leaf case of tests/vectors/vectors.json (generated with @openzeppelin/merkle-tree, also checked
    /// by the C# BidsMerkle tests): same leaf hashes, same root, and its proofs verify as the inbox verifies.
    function test_bidsLeafAndProofsMatchMerkleTreeVectors() public view {
        bytes32[3] memory hh = [
            bytes32(0xb9e962661b18727f8e3a7ab213e921379294759eb3ddb6264bab44bfd455bd2d),
            0x77a3458498278f3ba63c204f9e0391b1afcd0818a529d86da577dfea571c573b,
            0x4987cb00eda098eda1fa5c23093c487e9e69cb7a0517f917b4f701584a82e772
        ];
        uint64[3] memory at = [uint64(1700000000039), 1700000002958, 1700000000877];
        bytes32[3] memory leaf = [
            bytes32(0xb34c1c41371124f042d6bcf6ae5888baa82549276a5f3fe8f6cdb12254a55439),
            0x1d9d3d080de01b2a17af40f606b17f4825f3f8e66ef48ca80067310d3d7fdf69,
            0x8e6988eaf7203dad1ed4ccc775147d9d15dfe4222cc8ec55b8c276213f7cf470
        ];
        bytes32 root = 0x11b6318c6136b8ed57630e7e80e86a7481abc671b3784369957d062d54fbc4cd;
        bytes32[] memory leaves = new bytes32[](3);
        for (uint256 i = 0; i < 3; ++i) {
            assertEq(inbox.bidsLeaf(hh[i], at[i]), leaf[i]);
            leaves[i] = leaf[i];
        }
        bytes32[] memory tree = merkleTree(leaves);
        assertEq(tree[0], root);
        bytes32[] memory p1 = new bytes32[](2);
        p1[0] = 0x8e6988eaf7203dad1ed4ccc775147d9d15dfe4222cc8ec55b8c276213f7cf470;
        p1[1] = 0xb34c1c41371124f042d6bcf6ae5888baa82549276a5f3fe8f6cdb12254a55439;
        assertTrue(MerkleProof.verify(p1, root, leaf[1]), "vector proof of leaf 1");
        bytes32[] memory mine = merkleProof(tree, leaf[1]);
        assertEq(mine.length, 2);
        assertEq(mine[0], p1[0]);
        assertEq(mine[1], p1[1]);
    }

    // ------------------------------------------------------------------ happy paths

    function test_postSecondPriceWithRunnerUp() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        bytes32 hh = hashOf(p);
        address proposer = p.header.proposer;
        address winner = p.header.builder;
        assertEq(p.price, 0.6 ether);
        vm.expectEmit(true, true, true, true, address(inbox));
        emit HeaderPosted(100, hh, proposer, winner, relay, 0.6 ether, p.bidsRoot, p.proposalSignature);
        vm.prank(vm.addr(0x5EE)); // anyone may post
        inbox.postHeaders(one(p));

        assertEq(inbox.lastPostedSlot(), 100);
        assertEq(inbox.headerCount(), 1);
        (bytes32 headHash, uint64 headNumber) = inbox.head();
        assertEq(headHash, hh);
        assertEq(headNumber, 1);
        assertEq(escrow.balanceOf(winner, relay), DEPOSIT - 0.6 ether);
        assertEq(escrow.balanceOf(p.runnerUp[0].builder, relay), DEPOSIT);
        assertEq(escrow.earningsOf(proposer), 0.6 ether);
    }

    function test_postChainInOneBatchAndAcrossBatches() public {
        PostedHeader[] memory a = chain(200, 5, bytes32(0), 0, hex"c0");
        inbox.postHeaders(a);
        bytes32 last = hashOf(a[4]);
        (bytes32 hh, uint64 num) = inbox.head();
        assertEq(hh, last);
        assertEq(num, 5);
        // next batch extends the head, with slots 205..209 left empty
        PostedHeader[] memory b = chain(210, 3, last, 5, hex"c0");
        inbox.postHeaders(b);
        (hh, num) = inbox.head();
        assertEq(hh, hashOf(b[2]));
        assertEq(num, 8);
        assertEq(inbox.lastPostedSlot(), 212);
        assertEq(inbox.headerCount(), 8);
    }

    function test_secondPriceWithoutRunnerUpPaysReserve() public {
        Spec memory s = spec(100, 1, bytes32(0), hex"c0");
        s.hasRunnerUp = false;
        PostedHeader memory p = make(s);
        assertEq(p.price, RESERVE);
        inbox.postHeaders(one(p));
        assertEq(escrow.balanceOf(p.header.builder, relay), DEPOSIT - RESERVE);
        assertEq(escrow.earningsOf(p.header.proposer), RESERVE);
    }

    function test_runnerUpAtTheReserveIsAccepted() public {
        Spec memory s = spec(100, 1, bytes32(0), hex"c0");
        s.runnerValue = RESERVE;
        inbox.postHeaders(one(make(s)));
        assertEq(inbox.headerCount(), 1);
    }

    function test_runnerUpEqualToValueIsAccepted() public {
        Spec memory s = spec(100, 1, bytes32(0), hex"c0");
        s.runnerValue = s.value;
        inbox.postHeaders(one(make(s)));
        assertEq(escrow.earningsOf(registry.proposerForSlot(100)), 1 ether);
    }

    function test_proposersOwnBlockNeedsNoAuction() public {
        PostedHeader memory p = ownBlock(100, 1, bytes32(0));
        address prop = p.header.proposer;
        vm.expectEmit(true, true, true, true, address(inbox));
        emit HeaderPosted(100, hashOf(p), prop, prop, address(0), 0, bytes32(0), p.proposalSignature);
        inbox.postHeaders(one(p));
        assertEq(inbox.headerCount(), 1);
        assertEq(escrow.earningsOf(prop), 0);
    }

    function test_itemsBehindTheHeadAreSkipped() public {
        PostedHeader[] memory a = chain(100, 4, bytes32(0), 0, hex"c0"); // slots 100..103
        PostedHeader[] memory first = new PostedHeader[](2);
        first[0] = a[0];
        first[1] = a[1];
        inbox.postHeaders(first);
        // a second poster (another relay) sends the whole batch: the common items are skipped, the rest posted
        vm.expectEmit(true, true, false, false, address(inbox));
        emit HeaderSkipped(100, hashOf(a[0]));
        vm.expectEmit(true, true, false, false, address(inbox));
        emit HeaderSkipped(101, hashOf(a[1]));
        inbox.postHeaders(a);
        assertEq(inbox.headerCount(), 4);
        assertEq(inbox.lastPostedSlot(), 103);
        // paid once each
        assertEq(escrow.balanceOf(builders[0], relay), DEPOSIT - 0.6 ether); // slot 100 only (100 % 4 == 0)
        // a batch of nothing but done items changes nothing and does not revert
        inbox.postHeaders(a);
        assertEq(inbox.headerCount(), 4);
        // any item for a slot at or behind the head is skipped, even a different header (the chain moved on)
        PostedHeader memory late = item(102, 3, hashOf(a[1]));
        late.payload = hex"c1"; // would fail later checks, but is skipped first
        inbox.postHeaders(one(late));
        assertEq(inbox.headerCount(), 4);
    }

    function test_duplicateSlotWithinBatchIsSkipped() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        inbox.postHeaders(two(p, p));
        assertEq(inbox.headerCount(), 1);
        assertEq(escrow.earningsOf(p.header.proposer), 0.6 ether);
    }

    function test_acceptsVZeroOne() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.builderSignature[64] = bytes1(uint8(p.builderSignature[64]) - 27);
        p.proposalSignature[64] = bytes1(uint8(p.proposalSignature[64]) - 27);
        p.relaySignature[64] = bytes1(uint8(p.relaySignature[64]) - 27);
        inbox.postHeaders(one(p));
        assertEq(inbox.headerCount(), 1);
    }

    function test_currentSlotIsPostable() public {
        uint64 cur = inbox.currentSlot();
        assertEq(cur, NOW_SLOT);
        inbox.postHeaders(one(item(cur, 1, bytes32(0))));
        assertEq(inbox.lastPostedSlot(), cur);
    }

    function test_shortfallIsRecordedAndBarsTheBuilder() public {
        address poor = vm.addr(0xB0B0);
        keyOf[poor] = 0xB0B0;
        builders.push(poor); // index 4
        vm.deal(poor, 10 ether);
        vm.prank(poor);
        escrow.deposit{value: 0.25 ether}(relay);
        Spec memory s = spec(100, 1, bytes32(0), hex"c0");
        s.winner = 4;
        PostedHeader memory p = make(s);
        address prop = p.header.proposer;
        vm.expectEmit(true, true, true, true, address(escrow));
        emit Shortfall(poor, relay, prop, 0.6 ether, 0.35 ether);
        inbox.postHeaders(one(p)); // the chain does not halt on money
        assertEq(inbox.headerCount(), 1);
        assertEq(escrow.balanceOf(poor, relay), 0);
        assertEq(escrow.earningsOf(prop), 0.25 ether);
        assertEq(escrow.shortfallOf(poor, prop), 0.35 ether);
        assertTrue(escrow.isBarred(poor), "barred");
        vm.prank(poor);
        escrow.payShortfall{value: 0.35 ether}(prop);
        assertFalse(escrow.isBarred(poor));
        assertEq(escrow.earningsOf(prop), 0.6 ether);
    }

    function test_settlementTakesOnlyTheSigningRelaysAllocation() public {
        uint256 pk2 = 0xC0FFEE2;
        address relay2 = vm.addr(pk2);
        vm.deal(relay2, 10 ether);
        vm.prank(relay2);
        inbox.registerRelay{value: MIN_RELAY_BOND}();
        PostedHeader memory p = item(100, 1, bytes32(0));
        signItem(p, pk2); // relay 2 ran this auction; the winner has nothing allocated there
        inbox.postHeaders(one(p));
        assertEq(escrow.balanceOf(p.header.builder, relay), DEPOSIT); // relay 1's allocation untouched
        assertEq(escrow.shortfallOf(p.header.builder, p.header.proposer), 0.6 ether);
        assertTrue(escrow.isBarred(p.header.builder));
    }

    // ------------------------------------------------------------------ refusals, in check order

    function test_revert_emptyBatch() public {
        vm.expectRevert(IPbsErrors.EmptyBatch.selector);
        inbox.postHeaders(new PostedHeader[](0));
    }

    function test_revert_wrongL2ChainId() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.header.l2ChainId = 1;
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.WrongL2ChainId.selector, L2_CHAIN_ID, 1));
        inbox.postHeaders(one(p));
    }

    function test_revert_slotNotStarted() public {
        PostedHeader memory p = item(NOW_SLOT + 1, 1, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.SlotNotStarted.selector, NOW_SLOT + 1));
        inbox.postHeaders(one(p));
        // the instant it starts, it is postable
        vm.warp(uint256(startMs(NOW_SLOT + 1)) / 1000);
        inbox.postHeaders(one(p));
        assertEq(inbox.lastPostedSlot(), NOW_SLOT + 1);
    }

    /// @notice A future proposer cannot post early and make the slots before its own unpostable.
    function test_earlySlotCannotBlockEarlierSlots() public {
        PostedHeader memory future = item(NOW_SLOT + 1, 1, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.SlotNotStarted.selector, NOW_SLOT + 1));
        inbox.postHeaders(one(future));
        inbox.postHeaders(one(item(NOW_SLOT, 1, bytes32(0))));
        assertEq(inbox.lastPostedSlot(), NOW_SLOT);
    }

    function test_revert_badTimestamp() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.header.timestampMs += 1;
        signItem(p, relayPk);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.BadTimestamp.selector, startMs(100), startMs(100) + 1));
        inbox.postHeaders(one(p));
    }

    function test_revert_gasUsedAboveLimit() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.header.gasUsed = p.header.gasLimit + 1;
        signItem(p, relayPk);
        vm.expectRevert(IPbsErrors.GasUsedAboveLimit.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_notOnHead_genesisNumber() public {
        PostedHeader memory p = item(100, 2, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotOnHead.selector, bytes32(0), 0, bytes32(0), 2));
        inbox.postHeaders(one(p));
    }

    function test_revert_notOnHead_unknownParent() public {
        PostedHeader memory p = item(100, 1, keccak256("nope"));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotOnHead.selector, bytes32(0), 0, keccak256("nope"), 1));
        inbox.postHeaders(one(p));
    }

    function test_revert_notOnHead_forkFromGenesisOrOlderHeader() public {
        PostedHeader[] memory a = chain(100, 3, bytes32(0), 0, hex"c0");
        inbox.postHeaders(a);
        bytes32 headHash = hashOf(a[2]);
        // a relay started on an empty state auctions a number-1 block on genesis: refused
        PostedHeader memory g = item(105, 1, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotOnHead.selector, headHash, 3, bytes32(0), 1));
        inbox.postHeaders(one(g));
        // a fork off an older stored header: refused
        PostedHeader memory f = item(105, 2, hashOf(a[0]));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotOnHead.selector, headHash, 3, hashOf(a[0]), 2));
        inbox.postHeaders(one(f));
        // the right number on the wrong parent, or the wrong number on the head: refused
        PostedHeader memory w = item(105, 4, hashOf(a[1]));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotOnHead.selector, headHash, 3, hashOf(a[1]), 4));
        inbox.postHeaders(one(w));
        PostedHeader memory n = item(105, 5, headHash);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotOnHead.selector, headHash, 3, headHash, 5));
        inbox.postHeaders(one(n));
    }

    function test_revert_notOnHead_withinBatch() public {
        PostedHeader memory a = item(100, 1, bytes32(0));
        PostedHeader memory b = item(101, 1, bytes32(0)); // sibling, not child, of a
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotOnHead.selector, hashOf(a), 1, bytes32(0), 1));
        inbox.postHeaders(two(a, b));
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
        p.header.value = 2 ether; // the builder signed value = 1 ether
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
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.header.builder = address(0);
        p.builderSignature = new bytes(65); // recovers nothing
        vm.expectRevert(IPbsErrors.BadBuilderSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_noProposerForSlot_emptySet() public {
        for (uint256 i = 0; i < NUM_GENESIS; ++i) {
            vm.prank(genesisProposers[i]);
            registry.requestExit();
        }
        uint64 slot = (registry.currentEpoch() + 2) * SLOTS_PER_EPOCH;
        warpToSlot(slot);
        PostedHeader memory p = item(slot, 1, bytes32(0));
        p.header.proposer = genesisProposers[0];
        signItem(p, relayPk);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NoProposerForSlot.selector, slot));
        inbox.postHeaders(one(p));
    }

    function test_revert_notScheduledProposer() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        address expected = p.header.proposer;
        address other = genesisProposers[0] == expected ? genesisProposers[1] : genesisProposers[0];
        p.header.proposer = other;
        signItem(p, relayPk);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotScheduledProposer.selector, uint64(100), expected, other));
        inbox.postHeaders(one(p));
    }

    function test_revert_missingAuctionResult() public {
        // a builder's block without the relay's result (e.g. the winner posting it itself with price 0)
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.price = 0;
        p.bidsRoot = 0;
        p.bidCount = 0;
        p.runnerUp = new RunnerUp[](0);
        signItem(p, 0);
        vm.expectRevert(IPbsErrors.MissingAuctionResult.selector);
        inbox.postHeaders(one(p));
        // the proposer's own block must carry no settlement
        PostedHeader memory o = ownBlock(100, 1, bytes32(0));
        o.price = 1;
        signItem(o, 0);
        vm.expectRevert(IPbsErrors.MissingAuctionResult.selector);
        inbox.postHeaders(one(o));
        o = ownBlock(100, 1, bytes32(0));
        o.bidsRoot = keccak256("x");
        signItem(o, 0);
        vm.expectRevert(IPbsErrors.MissingAuctionResult.selector);
        inbox.postHeaders(one(o));
        o = ownBlock(100, 1, bytes32(0));
        o.bidCount = 1;
        signItem(o, 0);
        vm.expectRevert(IPbsErrors.MissingAuctionResult.selector);
        inbox.postHeaders(one(o));
    }

    /// @notice The attacks of issue 12: a racer changes the price (0, lower, higher) or the bids root of the
    /// proposed item; the relay's signature then recovers to an unregistered address.
    function test_revert_unknownRelay_tamperedSettlement() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        uint256[3] memory prices = [uint256(0), 0.3 ether, 1 ether];
        for (uint256 i = 0; i < 3; ++i) {
            PostedHeader memory q = item(100, 1, bytes32(0));
            q.price = prices[i];
            vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownRelay.selector, _signer(q)));
            inbox.postHeaders(one(q));
        }
        p.bidsRoot = keccak256("another root");
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownRelay.selector, _signer(p)));
        inbox.postHeaders(one(p));
    }

    function test_revert_unknownRelay_unregisteredExitedOrSlashed() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        signItem(p, ATTACKER_RELAY_PK);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownRelay.selector, vm.addr(ATTACKER_RELAY_PK)));
        inbox.postHeaders(one(p));
        // the registered relay, once it asked to leave, is refused at once
        p = item(100, 1, bytes32(0));
        vm.prank(relay);
        inbox.requestRelayExit();
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownRelay.selector, relay));
        inbox.postHeaders(one(p));
        assertFalse(inbox.isRelay(relay));
    }

    function test_revert_unknownRelay_badSignatureBytes() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.relaySignature = new bytes(65);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownRelay.selector, address(0)));
        inbox.postHeaders(one(p));
        p.relaySignature = _malleate(item(100, 1, bytes32(0)).relaySignature);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownRelay.selector, address(0)));
        inbox.postHeaders(one(p));
    }

    /// @notice A lying (registered) relay colluding with the proposer still cannot bend the price rule.
    function test_revert_wrongPrice_secondPrice() public {
        // price 0 with no runner-up: must be the reserve
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.runnerUp = new RunnerUp[](0);
        p.price = 0;
        signItem(p, relayPk);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.WrongPrice.selector, RESERVE, 0));
        inbox.postHeaders(one(p));
        // a price below the reserve with a runner-up
        p = item(100, 1, bytes32(0));
        p.price = RESERVE - 1;
        signItem(p, relayPk);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.WrongPrice.selector, RESERVE, RESERVE - 1));
        inbox.postHeaders(one(p));
        // a price above the value
        p = item(100, 1, bytes32(0));
        p.price = 1 ether + 1;
        signItem(p, relayPk);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.WrongPrice.selector, 1 ether, 1 ether + 1));
        inbox.postHeaders(one(p));
        // a value under the reserve
        Spec memory s = spec(100, 1, bytes32(0), hex"c0");
        s.value = RESERVE - 1;
        s.hasRunnerUp = false;
        p = make(s);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.WrongPrice.selector, RESERVE, RESERVE - 1));
        inbox.postHeaders(one(p));
    }

    function test_revert_unexpectedRunnerUp_two() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        RunnerUp[] memory r2 = new RunnerUp[](2);
        r2[0] = p.runnerUp[0];
        r2[1] = p.runnerUp[0];
        p.runnerUp = r2;
        vm.expectRevert(IPbsErrors.UnexpectedRunnerUp.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_runnerUpSameBuilder() public {
        Spec memory s = spec(100, 1, bytes32(0), hex"c0");
        s.runner = s.winner; // the winner's own second bid cannot set its price
        PostedHeader memory p = make(s);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.RunnerUpSameBuilder.selector, p.header.builder));
        inbox.postHeaders(one(p));
    }

    function test_revert_badRunnerUpSignature() public {
        // signed by another key
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.runnerUp[0].builderSignature = sig(0xBAD, inbox.headerDigest(runnerUpHeader(p.header, p.runnerUp[0], p.price)));
        vm.expectRevert(IPbsErrors.BadRunnerUpSignature.selector);
        inbox.postHeaders(one(p));
        // a price that is not the runner-up's value: the rebuilt header is not the one it signed
        p = item(100, 1, bytes32(0));
        p.price = 0.7 ether;
        signItem(p, relayPk);
        vm.expectRevert(IPbsErrors.BadRunnerUpSignature.selector);
        inbox.postHeaders(one(p));
        // a runner-up bid for another parent (or slot): rebuilt from the winner's fields, so it does not match
        p = item(100, 1, bytes32(0));
        Header memory other = runnerUpHeader(p.header, p.runnerUp[0], p.price);
        other.parentHash = keccak256("other parent");
        p.runnerUp[0].builderSignature = sig(key(p.runnerUp[0].builder), inbox.headerDigest(other));
        vm.expectRevert(IPbsErrors.BadRunnerUpSignature.selector);
        inbox.postHeaders(one(p));
        // a runner-up claiming the zero address
        p = item(100, 1, bytes32(0));
        p.runnerUp[0].builder = address(0);
        p.runnerUp[0].builderSignature = new bytes(65);
        vm.expectRevert(IPbsErrors.BadRunnerUpSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_runnerUpNotInBidsRoot() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.runnerUp[0].proof[0] = keccak256("wrong sibling");
        vm.expectRevert(IPbsErrors.RunnerUpNotInBidsRoot.selector);
        inbox.postHeaders(one(p));
        // another receivedAtMs is another leaf
        p = item(100, 1, bytes32(0));
        p.runnerUp[0].receivedAtMs += 1;
        vm.expectRevert(IPbsErrors.RunnerUpNotInBidsRoot.selector);
        inbox.postHeaders(one(p));
        // a relay signing a root the runner-up is not in
        p = item(100, 1, bytes32(0));
        p.bidsRoot = keccak256("root without the runner-up");
        signItem(p, relayPk);
        vm.expectRevert(IPbsErrors.RunnerUpNotInBidsRoot.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_badProposerSignature() public {
        // signed by another key
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.proposalSignature = sig(key(builders[0]), inbox.proposalDigest(proposalOf(p, relay)));
        vm.expectRevert(IPbsErrors.BadProposerSignature.selector);
        inbox.postHeaders(one(p));
        // the proposer accepted another settlement (another relay's cheaper result for the same header)
        p = item(100, 1, bytes32(0));
        Proposal memory pr = proposalOf(p, relay);
        pr.price = RESERVE;
        p.proposalSignature = sig(key(p.header.proposer), inbox.proposalDigest(pr));
        vm.expectRevert(IPbsErrors.BadProposerSignature.selector);
        inbox.postHeaders(one(p));
        // a version-1 Proposal(slot, headerHash) signature
        p = item(100, 1, bytes32(0));
        bytes32 v1 = keccak256(abi.encode(keccak256("Proposal(uint64 slot,bytes32 headerHash)"), uint64(100), hashOf(p)));
        p.proposalSignature =
            sig(key(p.header.proposer), keccak256(abi.encodePacked(hex"1901", inbox.domainSeparator(), v1)));
        vm.expectRevert(IPbsErrors.BadProposerSignature.selector);
        inbox.postHeaders(one(p));
        // high s
        p = item(100, 1, bytes32(0));
        p.proposalSignature = _malleate(p.proposalSignature);
        vm.expectRevert(IPbsErrors.BadProposerSignature.selector);
        inbox.postHeaders(one(p));
    }

    /// @notice A registered attacker relay signs a cheap result for the proposed header: the proposer never signed
    /// that settlement.
    function test_revert_attackerRelayResultNotAcceptedByProposer() public {
        address evil = vm.addr(ATTACKER_RELAY_PK);
        vm.deal(evil, 10 ether);
        vm.prank(evil);
        inbox.registerRelay{value: MIN_RELAY_BOND}();
        PostedHeader memory honest = item(100, 1, bytes32(0));
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.runnerUp = new RunnerUp[](0);
        p.price = RESERVE; // a valid second price without runner-up
        p.relaySignature = sig(ATTACKER_RELAY_PK, inbox.auctionResultDigest(resultOf(p)));
        p.proposalSignature = honest.proposalSignature; // what the proposer really signed
        vm.expectRevert(IPbsErrors.BadProposerSignature.selector);
        inbox.postHeaders(one(p));
    }

    function test_batchIsAllOrNothing() public {
        PostedHeader[] memory a = chain(100, 3, bytes32(0), 0, hex"c0");
        a[2].payload = hex"c1";
        vm.expectRevert(IPbsErrors.PayloadHashMismatch.selector);
        inbox.postHeaders(a);
        assertEq(inbox.headerCount(), 0);
        (bytes32 hh,) = inbox.head();
        assertEq(hh, bytes32(0));
        assertEq(escrow.balanceOf(builders[0], relay), DEPOSIT);
    }

    // ------------------------------------------------------------------ fuzz: price, bids root, parent, slot

    /// @notice Even with the relay and the proposer signing whatever price (collusion), only the runner-up's value
    /// is accepted under the second-price rule.
    function testFuzz_price(uint256 price) public {
        price = bound(price, 0, 3 ether);
        PostedHeader memory p = item(100, 1, bytes32(0));
        p.price = price;
        signItem(p, relayPk);
        if (price == 0.6 ether) {
            inbox.postHeaders(one(p));
            assertEq(escrow.earningsOf(p.header.proposer), 0.6 ether);
        } else {
            vm.expectRevert();
            inbox.postHeaders(one(p));
            assertEq(inbox.headerCount(), 0);
        }
    }

    /// @notice Without the relay's signature over it, no price but the auction's is accepted.
    function testFuzz_priceTamperedByRacer(uint256 price) public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        vm.assume(price != p.price);
        p.price = price;
        signItem(p, 0xBADBAD); // racer's own key as "relay" and the proposal re-signed (worst case)
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownRelay.selector, vm.addr(0xBADBAD)));
        inbox.postHeaders(one(p));
    }

    function testFuzz_bidsRoot(bytes32 root, bool relaySigns) public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        vm.assume(root != p.bidsRoot);
        p.bidsRoot = root;
        if (relaySigns) {
            signItem(p, relayPk);
            vm.expectRevert(IPbsErrors.RunnerUpNotInBidsRoot.selector);
        } else {
            vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownRelay.selector, _signer(p)));
        }
        inbox.postHeaders(one(p));
    }

    function testFuzz_parent(bytes32 parent, uint64 number) public {
        PostedHeader[] memory a = chain(100, 2, bytes32(0), 0, hex"c0");
        inbox.postHeaders(a);
        bytes32 headHash = hashOf(a[1]);
        number = uint64(bound(number, 0, 10));
        PostedHeader memory p = item(110, number, parent);
        if (parent == headHash && number == 3) {
            inbox.postHeaders(one(p));
            assertEq(inbox.headerCount(), 3);
        } else {
            vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotOnHead.selector, headHash, 2, parent, number));
            inbox.postHeaders(one(p));
        }
    }

    function testFuzz_parentIsHeadOrNumberIsRight(bool rightParent) public {
        PostedHeader[] memory a = chain(100, 2, bytes32(0), 0, hex"c0");
        inbox.postHeaders(a);
        PostedHeader memory p = rightParent ? item(110, 2, hashOf(a[1])) : item(110, 3, hashOf(a[0]));
        vm.expectRevert();
        inbox.postHeaders(one(p));
    }

    /// @notice Random slots after a posted head: behind or at the head -> skipped; not started -> refused;
    /// otherwise posted.
    function testFuzz_slot(uint64 slot) public {
        PostedHeader[] memory a = chain(5000, 1, bytes32(0), 0, hex"c0");
        inbox.postHeaders(a);
        slot = uint64(bound(slot, 0, NOW_SLOT + 100));
        PostedHeader memory p = item(slot, 2, hashOf(a[0]));
        if (slot <= 5000) {
            inbox.postHeaders(one(p));
            assertEq(inbox.headerCount(), 1);
        } else if (slot > NOW_SLOT) {
            vm.expectRevert(abi.encodeWithSelector(IPbsErrors.SlotNotStarted.selector, slot));
            inbox.postHeaders(one(p));
        } else {
            inbox.postHeaders(one(p));
            assertEq(inbox.lastPostedSlot(), slot);
            assertEq(inbox.headerCount(), 2);
        }
    }

    /// @notice A random batch of increasing slots, each item possibly spoiled in one field (price, bids root,
    /// parent, slot start): the batch posts iff no item is spoiled, and then moves exactly the runner-up prices.
    function testFuzz_batch(uint256 seed, uint8 len) public {
        uint256 n = bound(len, 1, 6);
        PostedHeader[] memory a = new PostedHeader[](n);
        bytes32 parent;
        uint64 slot = 100;
        bool spoiled;
        uint256 total;
        for (uint256 i = 0; i < n; ++i) {
            seed = uint256(keccak256(abi.encode(seed, i)));
            slot += uint64(1 + (seed % 3));
            Spec memory s = spec(slot, uint64(i + 1), parent, hex"c0");
            s.runnerValue = bound(seed >> 8, RESERVE, 1 ether);
            a[i] = make(s);
            parent = hashOf(a[i]);
            total += a[i].price;
            uint256 kind = (seed >> 128) % 10;
            if (kind == 0) {
                a[i].price += 1 + ((seed >> 160) % 1 ether);
                signItem(a[i], relayPk);
                spoiled = true;
            } else if (kind == 1) {
                a[i].bidsRoot = bytes32(seed);
                spoiled = true;
            } else if (kind == 2) {
                a[i].header.parentHash = bytes32(seed ^ 1);
                signItem(a[i], relayPk);
                spoiled = true;
            }
        }
        if (spoiled) {
            vm.expectRevert();
            inbox.postHeaders(a);
            assertEq(inbox.headerCount(), 0);
        } else {
            inbox.postHeaders(a);
            assertEq(inbox.headerCount(), n);
            uint256 earned;
            for (uint256 i = 0; i < NUM_GENESIS; ++i) earned += escrow.earningsOf(genesisProposers[i]);
            assertEq(earned, total);
        }
    }

    /// @notice Recovery helper agrees with vm.sign for any key and digest, in both v encodings.
    function testFuzz_recoverSigner(uint256 pk, bytes32 digest) public view {
        pk = bound(pk, 1, SECP256K1_N - 1);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        assertEq(inbox.recoverSigner(digest, abi.encodePacked(r, s, v)), vm.addr(pk));
        assertEq(inbox.recoverSigner(digest, abi.encodePacked(r, s, v - 27)), vm.addr(pk));
    }

    // ------------------------------------------------------------------ helpers

    function _signer(PostedHeader memory p) internal view returns (address) {
        return inbox.recoverSigner(inbox.auctionResultDigest(resultOf(p)), p.relaySignature);
    }

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

/// @notice The first-price rule: price = value, no runner-up.
contract InboxFirstPriceTest is Fixture {
    function priceRule() internal pure override returns (uint8) {
        return 0;
    }

    function test_firstPricePaysValue() public {
        Spec memory s = spec(100, 1, bytes32(0), hex"c0");
        s.hasRunnerUp = false;
        PostedHeader memory p = make(s);
        assertEq(p.price, 1 ether);
        inbox.postHeaders(one(p));
        assertEq(escrow.earningsOf(p.header.proposer), 1 ether);
        assertEq(inbox.PRICE_RULE(), 0);
    }

    function test_revert_firstPriceWrongPrice() public {
        Spec memory s = spec(100, 1, bytes32(0), hex"c0");
        s.hasRunnerUp = false;
        PostedHeader memory p = make(s);
        p.price = 0.6 ether;
        signItem(p, relayPk);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.WrongPrice.selector, 1 ether, 0.6 ether));
        inbox.postHeaders(one(p));
    }

    function test_revert_firstPriceWithRunnerUp() public {
        PostedHeader memory p = make(spec(100, 1, bytes32(0), hex"c0"));
        vm.expectRevert(IPbsErrors.UnexpectedRunnerUp.selector);
        inbox.postHeaders(one(p));
    }

    function test_revert_constructorBadConfig() public {
        vm.expectRevert(IPbsErrors.BadConfig.selector);
        new Inbox(address(registry), address(escrow), L2_CHAIN_ID, 2, RESERVE, MIN_RELAY_BOND, RELAY_EXIT_DELAY);
        vm.expectRevert(IPbsErrors.BadConfig.selector);
        new Inbox(address(registry), address(escrow), L2_CHAIN_ID, 1, RESERVE, 0, RELAY_EXIT_DELAY);
        vm.expectRevert(IPbsErrors.ZeroAddress.selector);
        new Inbox(address(0), address(escrow), L2_CHAIN_ID, 1, RESERVE, MIN_RELAY_BOND, RELAY_EXIT_DELAY);
    }
}
