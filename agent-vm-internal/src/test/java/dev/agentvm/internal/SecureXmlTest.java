package dev.agentvm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.Element;

class SecureXmlTest {
  @Test
  void buildsParsesAndWritesBack() {
    Document d = SecureXml.newDocument();
    Element root = d.createElement("network");
    d.appendChild(root);
    SecureXml.text(d, root, "name", "a & <b>");
    SecureXml.child(d, root, "bridge").setAttribute("name", "br'0\"");
    String flat = SecureXml.serialise(d, false);
    assertEquals(
        "<network><name>a &amp; &lt;b&gt;</name><bridge name=\"br'0&quot;\"/></network>", flat);
    assertTrue(SecureXml.serialise(d, true).contains("\n"));
    Element back = SecureXml.parse(flat).getDocumentElement();
    assertEquals("a & <b>", SecureXml.textOf(back, "name"));
    assertEquals("", SecureXml.textOf(back, "uuid"));
  }

  @Test
  void refusesDoctypesAndBrokenText() {
    String xxe =
        "<!DOCTYPE n [<!ENTITY x SYSTEM 'file:///etc/hostname'>]><network><name>&x;</name></network>";
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> SecureXml.parse(xxe));
    assertTrue(e.getMessage().contains("DOCTYPE"), e.getMessage());
    assertThrows(
        IllegalArgumentException.class,
        () -> SecureXml.parse("<!DOCTYPE n SYSTEM 'http://127.0.0.1:1/n.dtd'><n/>"));
    assertThrows(IllegalArgumentException.class, () -> SecureXml.parse("<n>"));
    assertThrows(IllegalArgumentException.class, () -> SecureXml.parse(""));
  }
}
