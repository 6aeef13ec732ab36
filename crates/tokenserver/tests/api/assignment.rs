//! Node assignment through the endpoint: capacity, downed nodes, removed nodes.

use std::collections::HashMap;

use tokenserver_store::NodeChange;

use crate::issuer::Issuer;
use crate::server::TestTokenServer;

fn node_of(endpoint: &str) -> String {
    endpoint.rsplit_once("/1.5/").unwrap().0.to_owned()
}

#[tokio::test]
async fn users_spread_by_capacity_and_downed_nodes_get_none() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = TestTokenServer::start(
        &issuer,
        &[("http://small.test", 10), ("http://big.test", 30)],
    )
    .await;
    let mut counts = HashMap::<String, u32>::new();
    for i in 0..20 {
        let reply = server
            .request(&issuer.token(&format!("user{i}"), 1), 1, "aaaa")
            .await;
        *counts.entry(node_of(reply.endpoint())).or_default() += 1;
    }
    assert_eq!(counts["http://big.test"], 14, "{counts:?}");
    assert_eq!(counts["http://small.test"], 6, "{counts:?}");

    server
        .store
        .update_node(
            "http://big.test",
            NodeChange {
                downed: Some(true),
                ..NodeChange::default()
            },
        )
        .await
        .unwrap();
    for i in 20..24 {
        let reply = server
            .request(&issuer.token(&format!("user{i}"), 1), 1, "aaaa")
            .await;
        assert_eq!(node_of(reply.endpoint()), "http://small.test");
    }
    // The small node is now full and the big one down: nobody can take a new user.
    assert_eq!(
        server
            .request(&issuer.token("user24", 1), 1, "aaaa")
            .await
            .status,
        503
    );
    // Users already on the downed node keep it.
    let mut on_big = 0;
    for i in 0..20 {
        let reply = server
            .request(&issuer.token(&format!("user{i}"), 1), 1, "aaaa")
            .await;
        on_big += u32::from(node_of(reply.endpoint()) == "http://big.test");
    }
    assert_eq!(on_big, 14);
}

#[tokio::test]
async fn users_of_a_removed_node_move_to_a_new_uid() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = TestTokenServer::start(&issuer, &[("http://a.test", 100)]).await;
    let first = server.request(&issuer.token("acct1", 1), 1, "aaaa").await;
    server.store.add_node("http://b.test", 100).await.unwrap();
    assert_eq!(
        server.store.remove_node("http://a.test", 1).await.unwrap(),
        1
    );
    let moved = server.request(&issuer.token("acct1", 1), 1, "aaaa").await;
    assert_ne!(moved.uid(), first.uid());
    assert_eq!(node_of(moved.endpoint()), "http://b.test");
    // And stays there.
    let again = server.request(&issuer.token("acct1", 1), 1, "aaaa").await;
    assert_eq!(again.uid(), moved.uid());
}
