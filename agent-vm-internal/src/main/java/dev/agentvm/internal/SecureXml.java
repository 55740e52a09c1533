package dev.agentvm.internal;

import java.io.IOException;
import java.io.StringReader;
import java.io.StringWriter;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.parsers.ParserConfigurationException;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.Transformer;
import javax.xml.transform.TransformerConfigurationException;
import javax.xml.transform.TransformerException;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;
import org.xml.sax.InputSource;
import org.xml.sax.SAXException;

/**
 * XML parsers and transformers that never fetch anything (XXE), and the few DOM steps agent-vm's
 * XML writers and readers share: libvirt's XML (domains, networks, saved memory images) is read and
 * written through these only.
 */
public final class SecureXml {
  private SecureXml() {}

  /**
   * A namespace-aware parser factory that refuses DOCTYPEs and never fetches external entities,
   * DTDs or schemas.
   */
  public static DocumentBuilderFactory parserFactory() throws ParserConfigurationException {
    DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
    f.setNamespaceAware(true);
    f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
    f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
    f.setFeature("http://xml.org/sax/features/external-general-entities", false);
    f.setFeature("http://xml.org/sax/features/external-parameter-entities", false);
    f.setAttribute(XMLConstants.ACCESS_EXTERNAL_DTD, "");
    f.setAttribute(XMLConstants.ACCESS_EXTERNAL_SCHEMA, "");
    f.setXIncludeAware(false);
    f.setExpandEntityReferences(false);
    return f;
  }

  /** An identity transformer that never fetches external DTDs or stylesheets. */
  public static Transformer transformer() throws TransformerConfigurationException {
    TransformerFactory tf = TransformerFactory.newInstance();
    tf.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
    tf.setAttribute(XMLConstants.ACCESS_EXTERNAL_DTD, "");
    tf.setAttribute(XMLConstants.ACCESS_EXTERNAL_STYLESHEET, "");
    return tf.newTransformer();
  }

  /** An empty document. */
  public static Document newDocument() {
    try {
      return parserFactory().newDocumentBuilder().newDocument();
    } catch (ParserConfigurationException e) {
      throw new IllegalStateException("JDK XML support is broken", e);
    }
  }

  /**
   * Parses XML with {@link #parserFactory()}'s parser.
   *
   * @throws IllegalArgumentException if it is not well-formed or declares a DOCTYPE
   */
  public static Document parse(String xml) {
    try {
      return parserFactory().newDocumentBuilder().parse(new InputSource(new StringReader(xml)));
    } catch (SAXException | IOException e) {
      throw new IllegalArgumentException("unreadable XML from libvirt: " + e.getMessage(), e);
    } catch (ParserConfigurationException e) {
      throw new IllegalStateException("JDK XML support is broken", e);
    }
  }

  /** The document as text, without an XML declaration; indented if asked. */
  public static String serialise(Document d, boolean indent) {
    try {
      StringWriter w = new StringWriter();
      Transformer t = transformer();
      t.setOutputProperty(OutputKeys.OMIT_XML_DECLARATION, "yes");
      if (indent) {
        t.setOutputProperty(OutputKeys.INDENT, "yes");
      }
      t.transform(new DOMSource(d), new StreamResult(w));
      return w.toString();
    } catch (TransformerException e) {
      throw new IllegalStateException("JDK XML support is broken", e);
    }
  }

  /** Appends a new element {@code <name>} to {@code parent}. */
  public static Element child(Document d, Element parent, String name) {
    Element e = d.createElement(name);
    parent.appendChild(e);
    return e;
  }

  /** Appends a new element {@code <name>value</name>} to {@code parent}. */
  public static Element text(Document d, Element parent, String name, String value) {
    Element e = child(d, parent, name);
    e.setTextContent(value);
    return e;
  }

  /** The trimmed text of the first descendant {@code <tag>}, or "" if there is none. */
  public static String textOf(Element parent, String tag) {
    NodeList l = parent.getElementsByTagName(tag);
    return l.getLength() == 0 ? "" : l.item(0).getTextContent().trim();
  }
}
